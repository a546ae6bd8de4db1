"""The operation's timeline drawn as SVG: a row per step, a bar per attempt from start to end, coloured
by outcome, the error of a failed attempt on hover (and listed below the picture by the templates)."""

from __future__ import annotations

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from provisioning.models import Operation, StepRun
from provisioning.saga.versions import saga_view
from provisioning.selectors import operation_timeline

COLOURS = {
    "done": "#2e8b57",
    "retry": "#e0a100",
    "look": "#c9b458",
    "wait": "#6a8fd8",
    "failed": "#c0392b",
    "lost": "#7f3fbf",
    "compensated": "#8e8e8e",
    "compensation_failed": "#8b0000",
    "": "#1f5fbf",  # still running
}
ROW, LABEL, WIDTH = 26, 190, 640


def timeline_svg(operation: Operation, runs: list[StepRun] | None = None) -> SafeString:
    runs = operation_timeline(operation) if runs is None else runs
    try:
        order = saga_view(operation).order()
    except LookupError:
        order = []
    names = order + sorted({r.step for r in runs} - set(order))
    start = min((r.started_at for r in runs), default=operation.created_at)
    end = max([r.finished_at or timezone.now() for r in runs] + [start])
    span = max((end - start).total_seconds(), 0.001)
    height = ROW * len(names) + 30

    def x(moment) -> float:
        return LABEL + (moment - start).total_seconds() / span * (WIDTH - LABEL - 10)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Timeline of operation {operation.pk}">'
    ]
    for row, name in enumerate(names):
        y = row * ROW + 4
        parts.append(
            f'<text x="4" y="{y + 15}" font-size="12" font-family="sans-serif">{escape(name)}</text>'
        )
        parts.append(f'<line x1="{LABEL}" y1="{y + 10}" x2="{WIDTH - 10}" y2="{y + 10}" stroke="#e3e6ea"/>')
        for run in (r for r in runs if r.step == name):
            x1 = x(run.started_at)
            x2 = max(x(run.finished_at or timezone.now()), x1 + 3)
            colour = COLOURS.get(run.outcome, COLOURS[""])
            kind = "undo" if run.kind == StepRun.Kind.COMPENSATE else "attempt"
            tip = f"{name} {kind} {run.attempt}: {run.get_outcome_display() or 'running'}"
            if run.message:
                tip += f" - {run.message}"
            dash = ' stroke="#333" stroke-dasharray="3 2"' if run.kind == StepRun.Kind.COMPENSATE else ""
            parts.append(
                f'<rect class="bar outcome-{escape(run.outcome or "running")}" x="{x1:.1f}" y="{y + 3}" '
                f'width="{x2 - x1:.1f}" height="14" rx="2" fill="{colour}"{dash}><title>{escape(tip)}</title></rect>'
            )
    total = f"{span:.2f} s" if span < 120 else f"{span / 60:.1f} min"
    parts.append(
        f'<text x="{LABEL}" y="{height - 6}" font-size="11" font-family="sans-serif" fill="#555">'
        f'0 s</text><text x="{WIDTH - 60}" y="{height - 6}" font-size="11" font-family="sans-serif" '
        f'fill="#555">{escape(total)}</text></svg>'
    )
    return mark_safe("".join(parts))  # every dynamic part above is escaped
