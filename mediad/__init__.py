"""mediad: a self-hosted media download service."""

__version__ = "0.1.0"
