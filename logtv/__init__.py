"""logtv: follow a box's logs live over WebSockets, in the terminal."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("logtv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
