"""minerl.herobraine.hero.handler: the base of every mission handler."""
from abc import ABC, abstractmethod


class Handler(ABC):
    @abstractmethod
    def to_string(self) -> str: ...

    @abstractmethod
    def xml_template(self) -> str: ...

    def __repr__(self):
        return f"{type(self).__name__}({self.to_string()})"
