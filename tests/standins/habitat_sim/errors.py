class GreedyFollowerError(Exception):
    """Raised by GreedyGeodesicFollower when no path to the goal exists."""
