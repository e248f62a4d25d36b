"""STR rules: messages of a live stream or a recording (DECTRIS Stream V2 + Jungfraujoch CBOR).

The rules are judged by :mod:`jfconform.stream` message by message, not by the file walk,
so they are registered without a check function (as TRUTH is). The spec references are to
DECTRIS' Stream V2 documentation (SIMPLON 1.8 API), RFC 8949 and RFC 8746, and Jungfraujoch's
CBOR and image stream documentation; how firmly those sources state a field decides the
severities. Anything a DECTRIS
reader rejects, or that breaks a writer, is E. Where the sources disagree or the field name
is only inferred, the rule is W. Unknown message types, which receivers must ignore, are I.
"""

from __future__ import annotations

from jfconform.model import E, I, Severity, W
from jfconform.registry import Rule, register

#: Where stream rules apply (no HDF5 file role: ``jfconform check`` never runs them).
STREAM = "stream"

_STR_RULES: tuple[tuple[str, str, Severity, str, str, str], ...] = (
    (
        "STR-001",
        "not-cbor",
        E,
        "RFC 8949 (CBOR)",
        "The message is exactly one well-formed CBOR data item",
        "send one complete CBOR item per ZeroMQ message (no truncation, no trailing bytes)",
    ),
    (
        "STR-002",
        "self-describe-tag-missing",
        W,
        "RFC 8949 §3.4.6 (tag 55799); DECTRIS Stream V2 (reference parser, example messages)",
        "The message starts with the self-described CBOR tag 55799 (d9 d9 f7)",
        "prefix every message with d9 d9 f7; the DECTRIS reference parser rejects it otherwise",
    ),
    (
        "STR-003",
        "message-not-map",
        E,
        "DECTRIS Stream V2 (SIMPLON 1.8 API)",
        "The message is a map whose keys are text strings",
        "encode each message as one CBOR map with text keys",
    ),
    (
        "STR-004",
        "type-missing",
        E,
        "DECTRIS Stream V2 (SIMPLON 1.8 API); Jungfraujoch CBOR stream documentation",
        "The message has a text field 'type'",
        "add type = start, image, end, calibration or metadata",
    ),
    (
        "STR-005",
        "type-not-first",
        E,
        "DECTRIS Stream V2 (reference parser)",
        "'type' is the first key of the message map",
        "write the 'type' entry before every other key",
    ),
    (
        "STR-006",
        "type-unknown",
        I,
        "DECTRIS Stream V2; Jungfraujoch CBOR stream documentation"
        " (receivers ignore unknown types)",
        "The message type is start, image, end, calibration or metadata",
        "receivers skip unknown message types; check the spelling if this one should count",
    ),
    (
        "STR-007",
        "field-type-wrong",
        E,
        "DECTRIS Stream V2 (data model value types); Jungfraujoch CBOR stream documentation",
        "Each known field has the CBOR type of the spec (W for fields marked [inferred])",
        "encode the field as the spec says (a Float stays a CBOR float even when integral)",
    ),
    (
        "STR-008",
        "required-field-missing",
        E,
        "DECTRIS Stream V2 (SIMPLON 1.8 API); Jungfraujoch CBOR stream documentation",
        "Each message carries the fields its type requires",
        "add the field; start, image and end all need series_id and series_unique_id",
    ),
    (
        "STR-009",
        "typed-array-invalid",
        E,
        "RFC 8746 §2 (typed arrays)",
        "A typed array has a known element tag (64-87) and holds a byte string or tag 56500",
        "wrap pixel bytes in an RFC 8746 typed-array tag, e.g. 69 for uint16 little-endian",
    ),
    (
        "STR-010",
        "multidim-array-invalid",
        E,
        "RFC 8746 §3.1 (tag 40)",
        "Tag 40 holds [dims, typed array] with unsigned dims whose product fits the bytes",
        "write tag 40 [[height, width], typed array] with height × width × element size bytes",
    ),
    (
        "STR-011",
        "compression-invalid",
        E,
        "DECTRIS CBOR compression tag (tag 56500)",
        "Tag 56500 holds [algorithm, modifier, bytes] with a consistent framing header",
        "frame bslz4 as u64 size, u32 block size, then blocks; modifier = element size",
    ),
    (
        "STR-012",
        "compressed-size-mismatch",
        E,
        "DECTRIS CBOR compression tag (bslz4 and lz4 framing)",
        "The framing header's uncompressed size equals dims × element size",
        "write the true uncompressed byte count in the first 8 bytes of the payload",
    ),
    (
        "STR-013",
        "image-shape-mismatch",
        E,
        "DECTRIS Stream V2 (image_size_x/y, image_dtype); RFC 8746 §3.1",
        "Image and mask arrays are [image_size_y, image_size_x] of the start's image_dtype",
        "send arrays of the size and pixel type the start message announced",
    ),
    (
        "STR-014",
        "decompression-failed",
        E,
        "DECTRIS CBOR compression tag (with --decompress)",
        "Every LZ4 block of a compressed array decodes to its block's size",
        "the compressed payload is corrupt: check the compressor and the framing",
    ),
    (
        "STR-015",
        "channels-mismatch",
        E,
        "DECTRIS Stream V2 (channels; data follows their order)",
        "An image's data channels are the start's channels, in the same order",
        "send one data entry per channel listed in the start message, in that order",
    ),
    (
        "STR-016",
        "start-values-inconsistent",
        W,
        "DECTRIS Stream V2 (incident_energy, incident_wavelength)",
        "Start values agree with each other (energy × wavelength = hc, sizes > 0)",
        "derive incident_wavelength from incident_energy (12398.42 eV·Å) or vice versa",
    ),
    (
        "STR-017",
        "series-id-changed",
        E,
        "DECTRIS Stream V2 (series_id, series_unique_id as in start)",
        "Images and end carry the series_id and series_unique_id of their start",
        "copy both ids from the start message into every image and the end message",
    ),
    (
        "STR-018",
        "image-id-duplicate",
        E,
        "DECTRIS Stream V2; Jungfraujoch CBOR stream documentation (one image per image_id)",
        "No image_id arrives twice within a series",
        "send each image once; a writer would overwrite the earlier frame",
    ),
    (
        "STR-019",
        "image-id-out-of-range",
        E,
        "DECTRIS Stream V2 (zero-based image_id; number_of_images)",
        "Every image_id is below the start's number_of_images",
        "number images 0 … number_of_images − 1",
    ),
    (
        "STR-020",
        "image-id-not-increasing",
        E,
        "Jungfraujoch image stream documentation (whole data files per socket, in order)",
        "On each socket, image ids increase",
        "send the images of each socket in image_id order",
    ),
    (
        "STR-021",
        "start-missing",
        E,
        "DECTRIS Stream V2 (start once per series, before its images)",
        "Every series that sends images or an end also sends a start",
        "send the start message first on every image socket (start the judge before arming)",
    ),
    (
        "STR-022",
        "message-order-wrong",
        E,
        "DECTRIS Stream V2 (start, then images, then end)",
        "Start comes before a series' images and end, nothing of it after its end",
        "send start, calibration, images, end in that order on every socket",
    ),
    (
        "STR-023",
        "end-count-mismatch",
        E,
        "Jungfraujoch CBOR stream documentation (images_collected)",
        "The end's image count equals the images that arrived and fits number_of_images",
        "count in images_collected exactly the images that were sent",
    ),
    (
        "STR-024",
        "end-missing",
        E,
        "DECTRIS Stream V2 (end once per series)",
        "Every started series is closed by an end message on each socket",
        "send the end message on every image socket, also when the series stops early",
    ),
    (
        "STR-025",
        "images-missing",
        W,
        "DECTRIS Stream V2; Jungfraujoch CBOR stream documentation (image ids 0 … n − 1)",
        "A complete series has no holes in its image ids",
        "holes become fill-value frames in the files; check for dropped images",
    ),
    (
        "STR-026",
        "stream-silent",
        E,
        "DECTRIS Stream V2 (ZeroMQ transport); Jungfraujoch image stream documentation",
        "At least one message arrives (within --timeout for a live stream)",
        "check the endpoint and that the sender binds it and is streaming",
    ),
    (
        "STR-027",
        "rate-below-minimum",
        E,
        "user requirement (--min-rate)",
        "Images arrive at least at the rate given with --min-rate",
        "the sender, the network or this receiver is too slow for the rate asked",
    ),
    (
        "STR-028",
        "pause-too-long",
        W,
        "user requirement (--max-pause)",
        "No pause between messages is longer than --max-pause",
        "a stall in the sender or the network; compare with the sender's own statistics",
    ),
)

for _id, _symbol, _severity, _spec, _summary, _hint in _STR_RULES:
    register(Rule(_id, _symbol, _severity, _spec, _summary, _hint, None, (STREAM,)))
