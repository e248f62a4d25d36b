"""STR rules: messages of a live stream or a recording (DECTRIS Stream V2 + Jungfraujoch CBOR).

The rules are judged by :mod:`jfconform.stream` message by message, not by the file walk,
so they are registered without a check function (as TRUTH is). The spec references are to
``shared/spec/stream.md``, whose confidence marks decide the severities. Anything a DECTRIS
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
        "stream.md §2 (RFC 8949)",
        "The message is exactly one well-formed CBOR data item",
        "send one complete CBOR item per ZeroMQ message (no truncation, no trailing bytes)",
    ),
    (
        "STR-002",
        "self-describe-tag-missing",
        W,
        "stream.md §2 (DECTRIS reference parser, test vectors)",
        "The message starts with the self-described CBOR tag 55799 (d9 d9 f7)",
        "prefix every message with d9 d9 f7; the DECTRIS reference parser rejects it otherwise",
    ),
    (
        "STR-003",
        "message-not-map",
        E,
        "stream.md §2",
        "The message is a map whose keys are text strings",
        "encode each message as one CBOR map with text keys",
    ),
    (
        "STR-004",
        "type-missing",
        E,
        "stream.md §2, §4",
        "The message has a text field 'type'",
        "add type = start, image, end, calibration or metadata",
    ),
    (
        "STR-005",
        "type-not-first",
        E,
        "stream.md §2 (DECTRIS reference parser)",
        "'type' is the first key of the message map",
        "write the 'type' entry before every other key",
    ),
    (
        "STR-006",
        "type-unknown",
        I,
        "stream.md §9 item 5 (receivers ignore unknown types)",
        "The message type is start, image, end, calibration or metadata",
        "receivers skip unknown message types; check the spelling if this one should count",
    ),
    (
        "STR-007",
        "field-type-wrong",
        E,
        "stream.md §2.1, §4, §6",
        "Each known field has the CBOR type of the spec (W for fields marked [inferred])",
        "encode the field as the spec says (a Float stays a CBOR float even when integral)",
    ),
    (
        "STR-008",
        "required-field-missing",
        E,
        "stream.md §4 (DECTRIS), §6",
        "Each message carries the fields its type requires",
        "add the field; start, image and end all need series_id and series_unique_id",
    ),
    (
        "STR-009",
        "typed-array-invalid",
        E,
        "stream.md §2.2 (RFC 8746 §2)",
        "A typed array has a known element tag (64-87) and holds a byte string or tag 56500",
        "wrap pixel bytes in an RFC 8746 typed-array tag, e.g. 69 for uint16 little-endian",
    ),
    (
        "STR-010",
        "multidim-array-invalid",
        E,
        "stream.md §2.2-2.3 (RFC 8746 §3.1, tag 40)",
        "Tag 40 holds [dims, typed array] with unsigned dims whose product fits the bytes",
        "write tag 40 [[height, width], typed array] with height × width × element size bytes",
    ),
    (
        "STR-011",
        "compression-invalid",
        E,
        "stream.md §3 (tag 56500, DECTRIS compression tag)",
        "Tag 56500 holds [algorithm, modifier, bytes] with a consistent framing header",
        "frame bslz4 as u64 size, u32 block size, then blocks; modifier = element size",
    ),
    (
        "STR-012",
        "compressed-size-mismatch",
        E,
        "stream.md §3.1-3.2",
        "The framing header's uncompressed size equals dims × element size",
        "write the true uncompressed byte count in the first 8 bytes of the payload",
    ),
    (
        "STR-013",
        "image-shape-mismatch",
        E,
        "stream.md §2.2, §4.1 (image_size_x/y, image_dtype)",
        "Image and mask arrays are [image_size_y, image_size_x] of the start's image_dtype",
        "send arrays of the size and pixel type the start message announced",
    ),
    (
        "STR-014",
        "decompression-failed",
        E,
        "stream.md §3 (with --decompress)",
        "Every LZ4 block of a compressed array decodes to its block's size",
        "the compressed payload is corrupt: check the compressor and the framing",
    ),
    (
        "STR-015",
        "channels-mismatch",
        E,
        "stream.md §4.1-4.2 (channels; data follows their order)",
        "An image's data channels are the start's channels, in the same order",
        "send one data entry per channel listed in the start message, in that order",
    ),
    (
        "STR-016",
        "start-values-inconsistent",
        W,
        "stream.md §4.1 (incident_energy, incident_wavelength)",
        "Start values agree with each other (energy × wavelength = hc, sizes > 0)",
        "derive incident_wavelength from incident_energy (12398.42 eV·Å) or vice versa",
    ),
    (
        "STR-017",
        "series-id-changed",
        E,
        "stream.md §4.2-4.3 (series_id, series_unique_id as in start)",
        "Images and end carry the series_id and series_unique_id of their start",
        "copy both ids from the start message into every image and the end message",
    ),
    (
        "STR-018",
        "image-id-duplicate",
        E,
        "stream.md §4.2, §6.2 (one image per image_id)",
        "No image_id arrives twice within a series",
        "send each image once; a writer would overwrite the earlier frame",
    ),
    (
        "STR-019",
        "image-id-out-of-range",
        E,
        "stream.md §4.2 (zero-based image_id), §4.1 (number_of_images)",
        "Every image_id is below the start's number_of_images",
        "number images 0 … number_of_images − 1",
    ),
    (
        "STR-020",
        "image-id-not-increasing",
        E,
        "stream.md §1.2 (whole data files per socket, in order)",
        "On each socket, image ids increase",
        "send the images of each socket in image_id order",
    ),
    (
        "STR-021",
        "start-missing",
        E,
        "stream.md §4 (start once per series, before its images)",
        "Every series that sends images or an end also sends a start",
        "send the start message first on every image socket (start the judge before arming)",
    ),
    (
        "STR-022",
        "message-order-wrong",
        E,
        "stream.md §4 (start, then images, then end)",
        "Start comes before a series' images and end, nothing of it after its end",
        "send start, calibration, images, end in that order on every socket",
    ),
    (
        "STR-023",
        "end-count-mismatch",
        E,
        "stream.md §6.3 (images_collected)",
        "The end's image count equals the images that arrived and fits number_of_images",
        "count in images_collected exactly the images that were sent",
    ),
    (
        "STR-024",
        "end-missing",
        E,
        "stream.md §4.3 (end once per series)",
        "Every started series is closed by an end message on each socket",
        "send the end message on every image socket, also when the series stops early",
    ),
    (
        "STR-025",
        "images-missing",
        W,
        "stream.md §4.2, §6.2 (image ids 0 … n − 1)",
        "A complete series has no holes in its image ids",
        "holes become fill-value frames in the files; check for dropped images",
    ),
    (
        "STR-026",
        "stream-silent",
        E,
        "stream.md §1 (transport)",
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
