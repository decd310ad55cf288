"""netguard: network assurance and home-quarantine sensor monitoring for emergency teams."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("netguard")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
