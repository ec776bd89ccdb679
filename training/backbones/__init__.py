"""Pretrained image backbones for training: architectures, their weights and the weights reader."""
