"""jfsim: a synthetic JUNGFRAU/EIGER detector control unit speaking Jungfraujoch CBOR.

Parts (see the README): ``experiment`` (what is measured), ``geometry`` (where it lands),
``sim`` (what the pixels hold), ``protocol`` (CBOR messages, no I/O), ``stream`` (ZeroMQ),
``writer`` (NXmx HDF5 files), ``serve`` (jfjoch_broker's REST API), ``cli``.
"""

from importlib.metadata import PackageNotFoundError, version

from jfsim.errors import JfsimError

__all__ = ["JfsimError", "__version__"]

try:
    __version__ = version("jfsim")  # one version, pyproject.toml's
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"
