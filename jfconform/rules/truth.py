"""TRUTH rules: scores against a simulator truth file (``--truth``), evaluated by
:mod:`jfconform.truth` rather than the per-file walk."""

from __future__ import annotations

from jfconform.model import E
from jfconform.registry import Rule, register

_TRUTH_RULES = (
    (
        "TRUTH-001",
        "truth-file-invalid",
        "The truth file opens and has format jfsim-truth v1",
        "pass the <prefix>_truth.h5 written by the simulator for this run",
    ),
    (
        "TRUTH-002",
        "truth-run-mismatch",
        "The checked run matches the truth (frames, image size)",
        "compare the master with the truth file of the same run",
    ),
    (
        "TRUTH-003",
        "spot-recall-low",
        "Spot recall within the radius reaches --min-spot-recall",
        "the spot finder misses true reflections: check thresholds and the pixel convention",
    ),
    (
        "TRUTH-004",
        "spot-precision-low",
        "Spot precision within the radius reaches --min-spot-precision",
        "the spot finder reports spots where none are predicted: check thresholds and masks",
    ),
    (
        "TRUTH-005",
        "indexing-rate-low",
        "Indexing rate over hit images reaches --min-indexing-rate",
        "fewer images were indexed correctly than required",
    ),
    (
        "TRUTH-006",
        "cell-error-high",
        "Niggli-reduced indexed cell matches the true one within --max-cell-error",
        "the indexed cell differs from the true cell: check wavelength, distance, beam centre",
    ),
    (
        "TRUTH-007",
        "misorientation-high",
        "Indexed orientation within --max-misorientation-deg of the truth",
        "the orientation differs: check axis conventions (lab frame, rotation direction)",
    ),
    (
        "TRUTH-008",
        "intensity-correlation-low",
        "Pearson correlation of integrated and true intensities reaches --min-intensity-cc",
        "integrated intensities do not track the truth: check integration and scaling",
    ),
    (
        "TRUTH-010",
        "merged-intensity-correlation-low",
        "Pearson correlation of merged and true full intensities reaches --min-merged-intensity-cc",
        "merged intensities do not track the truth: check scaling, the partiality model (-P) "
        "and the space group",
    ),
    (
        "TRUTH-009",
        "truth-frames-substituted",
        "Every frame holds the truth's image with the same id (pixel SHA-256)",
        "the file holds other pixels than the truth describes (e.g. a stream that cycled a "
        "frame pool): score it against the truth of what was sent (jfsim stream --truth-out) "
        "or stream every recorded image",
    ),
)

for _id, _symbol, _summary, _hint in _TRUTH_RULES:
    register(
        Rule(
            _id,
            _symbol,
            E,
            "truth file format (jfsim-truth v1); docs/conform.md",
            _summary,
            _hint,
            None,
            ("master",),
        )
    )
