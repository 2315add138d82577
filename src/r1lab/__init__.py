"""r1lab: the DeepSeek-V3 architecture and the DeepSeek-R1 reasoning-training recipe, end to end."""

__version__ = "0.1.0"
