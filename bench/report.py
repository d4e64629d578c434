"""The Markdown report and its charts: every measurement, every ratio, every target met or missed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.common import Measurement, StageResult


@dataclass(frozen=True, slots=True)
class Target:
    """A target of the issue: a check over all results giving (value, met), or None when not measured."""

    text: str
    check: Callable[[dict[str, StageResult]], tuple[str, bool] | None]


def _measurement(results: dict[str, StageResult], stage: str, case: str) -> Measurement | None:
    stage_result = results.get(stage)
    return stage_result.find(case) if stage_result is not None else None


def ratio(results: dict[str, StageResult], stage: str, ours: str, theirs: str, floor: float) -> tuple[str, bool] | None:
    mine, other = _measurement(results, stage, ours), _measurement(results, stage, theirs)
    if mine is None or other is None or other.rate <= 0:
        return None
    value = mine.rate / other.rate
    return f"{value:.2f}x ({mine.rate:,.0f} / {other.rate:,.0f} {mine.unit})", value >= floor


def at_most(measurement: Measurement | None, value: float | None, limit: float, unit: str) -> tuple[str, bool] | None:
    if measurement is None or value is None:
        return None
    return f"{value:,.1f} {unit}", value <= limit


def write_report(
    path: Path,
    *,
    title: str,
    facts: dict[str, str],
    results: dict[str, StageResult],
    targets: Sequence[Target],
    command: str,
    elapsed: float,
    private_paths: Mapping[Path, str],
) -> None:
    """Write the report to ``path``; each of ``private_paths`` (this machine's folders, which
    notes and profiles quote) is written as its placeholder, so reports can be committed."""
    lines = [f"# {title}", "", f"Command: `{command}`; took {elapsed / 60:.1f} min.", "", "## Machine", ""]
    lines += ["| what | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in facts.items()]
    lines += ["", "## Targets", "", "| target | measured | verdict |", "| --- | --- | --- |"]
    for target in targets:
        outcome = target.check(results)
        if outcome is None:
            lines.append(f"| {target.text} | not measured | - |")
        else:
            lines.append(f"| {target.text} | {outcome[0]} | {'met' if outcome[1] else 'MISSED'} |")
    for name, result in results.items():
        lines += ["", f"## {name}", ""]
        if result.error:
            lines += [f"Not measured: {result.error}", ""]
        if result.measurements:
            lines += [
                "| case | rate | p50 ms | p99 ms | p99.9 ms | max ms | CPU % | peak RSS MB | ok | failed | note |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            ]
            lines += [_row(item) for item in result.measurements]
            chart = path.with_name(f"{path.stem}-{name}.png")
            if _chart(result, chart):
                lines += ["", f"![{name}]({chart.name})"]
        lines += ["", *[f"- {note}" for note in result.notes]]
        if result.details:
            lines += ["", *result.details]
    text = "\n".join(lines).rstrip() + "\n"
    # The longest first: one folder may hold another.
    for folder, placeholder in sorted(private_paths.items(), key=lambda item: -len(str(item[0]))):
        text = text.replace(str(folder), placeholder)
    path.write_text(text, encoding="utf-8")


def _row(item: Measurement) -> str:
    latency = item.latency
    usage = item.usage
    cells = [
        item.case,
        f"{item.rate:,.0f} {item.unit}",
        *(
            [f"{latency.p50:.1f}", f"{latency.p99:.1f}", f"{latency.p999:.1f}", f"{latency.max:.1f}"]
            if latency
            else [""] * 4
        ),
        *([f"{usage.cpu_percent:.0f}", f"{usage.peak_rss_mb:.0f}"] if usage else ["", ""]),
        str(item.ok),
        str(item.failed),
        item.note.replace("|", "/"),
    ]
    return "| " + " | ".join(cells) + " |"


def _chart(result: StageResult, path: Path) -> bool:
    """Throughput and latency percentiles of one stage, side by side; small PNG."""
    items = result.measurements
    if not items:
        return False
    with_latency = [item for item in items if item.latency is not None]
    figure, axes = plt.subplots(1, 2 if with_latency else 1, figsize=(11 if with_latency else 6, 4), dpi=80)
    throughput = axes[0] if with_latency else axes
    names = [item.case for item in items]
    throughput.barh(names, [item.rate for item in items], color="#4878a8")
    rates = [item.rate for item in items if item.rate > 0]
    spread_wide = bool(rates) and max(rates) / min(rates) > 50
    if spread_wide:
        throughput.set_xscale("log")
    units = {item.unit for item in items}
    label = f"throughput ({units.pop()})" if len(units) == 1 else "throughput"
    throughput.set_xlabel(label + (", log" if spread_wide else ""))
    throughput.invert_yaxis()
    throughput.tick_params(axis="y", labelsize=7)
    if with_latency:
        latency_axes = axes[1]
        positions = range(len(with_latency))
        for offset, (label, name) in enumerate((("p50", "p50"), ("p99", "p99"), ("p99.9", "p999"))):
            latency_axes.barh(
                [p + offset * 0.27 for p in positions],
                [float(getattr(item.latency, name)) for item in with_latency],
                height=0.27,
                label=label,
            )
        latency_axes.set_yticks([p + 0.27 for p in positions], [item.case for item in with_latency], fontsize=7)
        latency_axes.set_xscale("log")
        latency_axes.set_xlabel("latency (ms, log)")
        latency_axes.invert_yaxis()
        latency_axes.legend(fontsize=7)
    figure.suptitle(result.name)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
