"""The stylesheet inlined into every HTML report (system fonts only, print friendly)."""

from __future__ import annotations

CSS = """
td.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px;
  word-break: break-all; }
:root { --ink: #1d2330; --muted: #667085; --line: #e4e7ec; --ok: #1e7b34; --bad: #c62828;
  --warn: #b26a00; --bg: #f6f7f9; --card: #ffffff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  "Noto Sans", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 28px 40px; }
h1 { font-size: 24px; margin: 10px 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 0 0 4px; color: var(--ink); }
header { margin-bottom: 18px; }
.desc { color: var(--muted); margin: 0 0 8px; max-width: 80ch; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 20px; color: var(--muted); font-size: 13px; }
.facts b { color: var(--ink); font-weight: 600; margin-right: 4px; }
.verdict { display: inline-block; padding: 6px 14px; border-radius: 6px; font-weight: 700;
  color: #fff; letter-spacing: 0.02em; }
.verdict.pass { background: var(--ok); }
.verdict.fail { background: var(--bad); }
.verdict.aborted { background: #f2b705; color: #2b2200; }
.verdict.inconclusive { background: #3f51b5; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 10px;
  margin: 0 0 22px; }
.card { background: var(--card); border: 1px solid var(--line); border-left: 4px solid #98a2b3;
  border-radius: 8px; padding: 10px 12px; }
.card.ok { border-left-color: var(--ok); }
.card.bad { border-left-color: var(--bad); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.04em; }
.card { min-width: 0; }
.card .value { font-size: 20px; font-weight: 650; font-variant-numeric: tabular-nums;
  overflow-wrap: anywhere; }
.card .sub { color: var(--muted); font-size: 12px; }
.card .judged { margin-top: 6px; font-size: 11px; font-weight: 650; text-transform: uppercase;
  letter-spacing: 0.03em; color: var(--muted); }
.card.ok .judged { color: var(--ok); }
.card.bad .judged { color: var(--bad); }
.card.nj { border-left-style: dashed; }
.card.nj.warn { border-left-color: var(--warn); }
.card.nj.warn .judged { color: var(--warn); }
p.ok-text { color: var(--ok); margin: 0 0 8px; }
p.bad-text { color: var(--bad); font-weight: 600; margin: 0 0 8px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 18px; margin: 0 0 16px; }
section.cards { background: none; border: 0; padding: 0; }
figure { margin: 0 0 18px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 2px; }
svg.chart { width: 100%; height: auto; display: block; }
svg text { font-family: inherit; fill: #475467; }
svg text.tick { font-size: 11px; font-variant-numeric: tabular-nums; }
svg text.label { font-size: 12px; fill: #344054; }
svg text.legend { font-size: 12px; fill: #344054; }
svg text.band { font-size: 11px; font-weight: 600; paint-order: stroke; stroke: #fff;
  stroke-width: 3px; stroke-linejoin: round; }
svg line.grid { stroke: #eef0f3; stroke-width: 1; }
svg line.axis { stroke: #98a2b3; stroke-width: 1; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th { text-align: left; font-weight: 600; color: var(--muted); border-bottom: 1px solid var(--line);
  padding: 6px 8px; white-space: nowrap; }
td { padding: 6px 8px; border-bottom: 1px solid #f0f1f4; vertical-align: top; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.ok { color: var(--ok); font-weight: 600; }
td.bad { color: var(--bad); font-weight: 600; }
.muted, td.muted, td.empty { color: var(--muted); }
td.ev-detection { color: #b85c00; font-weight: 600; }
td.ev-drain { color: var(--bad); font-weight: 600; }
td.ev-restore { color: var(--ok); font-weight: 600; }
td.ev-degrade { color: #7b1fa2; font-weight: 600; }
td.ev-fault { color: #a33a46; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
details { margin-top: 8px; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 20px; }
@media print { body { background: #fff; } section { break-inside: avoid; } }
"""
