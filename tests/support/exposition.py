"""The Prometheus text exposition format (version 0.0.4), read into families for the tests:
names (colons included), TYPE lines, label sets with escaped values. Strict: a line it cannot
read raises ValueError, so a malformed exposition fails the test rather than losing series."""
import re

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def _labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ValueError(f"cannot read labels {text!r}")
        labels[m.group(1)] = m.group(2).replace(r"\"", '"').replace(r"\n", "\n").replace("\\\\", "\\")
        pos = m.end()
    return labels


def parse(text):
    """-> {family: {"type": str, "samples": [(sample_name, {label: value}, float)]}}. A sample
    belongs to the family named by the TYPE line it follows (histogram samples carry _bucket,
    _sum and _count suffixes)."""
    families, current = {}, None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                current = parts[2]
                families[current] = {"type": parts[3].strip(), "samples": []}
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"cannot read sample line {line!r}")
        name, labels, value = m.group(1), _labels(m.group(2) or ""), float(m.group(3))
        family = current if current and (name == current or any(
            name == current + s for s in _SUFFIXES.get(families[current]["type"], ()))) else name
        families.setdefault(family, {"type": "untyped", "samples": []})["samples"].append((name, labels, value))
    return families


def value(families, sample, **labels):
    """The value of the one series of `sample` (a family or a suffixed sample name) whose labels
    include `labels`; None when there is none; the sum when several match."""
    base = sample
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix) and sample[: -len(suffix)] in families:
            base = sample[: -len(suffix)]
    found = [v for n, l, v in families.get(base, {"samples": []})["samples"]
             if n == sample and all(l.get(k) == str(x) for k, x in labels.items())]
    return sum(found) if found else None
