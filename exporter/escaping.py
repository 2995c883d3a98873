"""How the text format and OpenMetrics spell names, label values, HELP texts and numbers: our own small functions.

prometheus_client's encoders are the reference (`tests/test_exposition.py` compares the exporter's bodies with
theirs byte for byte), but their escaping helpers are private, and their names and signatures changed between
releases (`_escape` and `UNDERSCORES` arrived together only in 0.23), so importing them tied the exporter to one
narrow range of versions. The exporter needs far less than their general case: every name it serves is declared
in `exporter.metrics`, which refuses any name or label name outside `PLAIN_NAME` (no colon, no dot, no UTF-8).
For such names each escaping scheme prometheus_client negotiates reduces to one rule:

- `underscores`, `allow-utf-8`, and any scheme it does not know: the name as it is;
- `dots`: every `_` doubled (a plain name has no `.` to become `_dot_`);
- `values`: the name as it is in HELP, TYPE and text-format sample lines, but `U__` plus the name with every
  `_` doubled in OpenMetrics sample lines, because prometheus_client's OpenMetrics encoder escapes sample names
  with its raw rule, which always prefixes `U__` under `values`. Prometheus unescapes both spellings to the
  same name.

Label values and HELP texts are arbitrary text; their escaping has been the same in every release.
"""

from __future__ import annotations

import math
import re

PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
UNDERSCORES = "underscores"
DOTS = "dots"
VALUES = "values"


def escape_label_value(value: str) -> str:
    """Label values in both formats, and HELP in OpenMetrics: backslash, newline and double quote escaped,
    everything else verbatim."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def escape_text_help(text: str) -> str:
    """HELP in the text format: backslash and newline escaped; a double quote stays as it is."""
    return text.replace("\\", r"\\").replace("\n", r"\n")


def escape_name(name: str, scheme: str) -> str:
    """A plain metric or label name under a negotiated escaping scheme (HELP, TYPE and text sample lines)."""
    return name.replace("_", "__") if scheme == DOTS else name


def escape_openmetrics_sample_name(name: str, scheme: str) -> str:
    """A plain sample name in an OpenMetrics sample line, as prometheus_client's OpenMetrics encoder writes it."""
    if scheme == VALUES:
        return "U__" + name.replace("_", "__")
    return escape_name(name, scheme)


def go_float(value: float) -> str:
    """A sample value as Go's `strconv.FormatFloat(v, 'g', -1, 64)` would write the ones we serve, and as
    prometheus_client writes them: Python's shortest repr, but exponent form for large positive numbers, with a
    two-digit exponent (prometheus_client before 0.21 wrote three, `1e+021`; this is written the same way
    whichever prometheus_client is installed)."""
    value = float(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text
