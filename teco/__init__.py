"""PyTorch TECO: VQ-GAN tokenizer (stage 1) and the temporally consistent transformer (stage 2)."""
