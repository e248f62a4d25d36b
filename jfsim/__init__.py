"""jfsim: a synthetic JUNGFRAU/EIGER detector control unit speaking Jungfraujoch CBOR.

Parts (see the README): ``experiment`` (what is measured), ``geometry`` (where it lands),
``sim`` (what the pixels hold), ``protocol`` (CBOR messages, no I/O), ``stream`` (ZeroMQ),
``writer`` (NXmx HDF5 files).
"""

from jfsim.errors import JfsimError

__all__ = ["JfsimError", "__version__"]
__version__ = "0.1.0"
