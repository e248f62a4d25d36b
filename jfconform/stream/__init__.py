"""The stream judge: DECTRIS Stream V2 / Jungfraujoch CBOR messages, live or recorded.

``judge_endpoints`` / ``judge_files`` (:mod:`jfconform.stream.run`) feed a
:class:`StreamJudge` and return its :class:`JudgeResult`; ``jfconform stream`` renders it
(:mod:`jfconform.stream.command`). Decoding is cbor2 plus the judge's own field table, never
jfsim's codec. The rules are the STR family (:mod:`jfconform.rules.stream`).
"""

from __future__ import annotations

from jfconform.stream.judge import JudgeOptions, JudgeResult, StopReason, StreamJudge
from jfconform.stream.run import RunOptions, judge_endpoints, judge_files

__all__ = [
    "JudgeOptions",
    "JudgeResult",
    "RunOptions",
    "StopReason",
    "StreamJudge",
    "judge_endpoints",
    "judge_files",
]
