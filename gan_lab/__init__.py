"""gan-lab: a config-driven lab for the classic GAN families."""

__version__ = "0.1.0"
