"""VisCy umbrella package: installs viscy-data, viscy-models, viscy-transforms and viscy-utils."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("viscy")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
