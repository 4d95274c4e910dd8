#!/usr/bin/env python3
"""Draws a run's loss curve as an SVG from its metrics.jsonl (standard library only).

usage: python3 tools/plot_loss.py RUN/metrics.jsonl OUT.svg [TITLE]
Training loss per step (thin line, and its 20-step mean), validation loss (dots).
"""
import json
import sys

path, out = sys.argv[1], sys.argv[2]
title = sys.argv[3] if len(sys.argv) > 3 else "loss"
train, val = [], []
for line in open(path):
    m = json.loads(line)
    if "loss" in m and m["loss"] is not None:
        train.append((m["step"], m["loss"]))
    if "validation_loss" in m:
        val.append((m["step"], m["validation_loss"]))
if not train:
    sys.exit(f"{path}: no training steps")
W, H, L, R, T, B = 720, 420, 60, 20, 40, 50
xs = [s for s, _ in train] + [s for s, _ in val]
ys = [l for _, l in train] + [l for _, l in val]
x0, x1 = min(xs), max(xs)
y0, y1 = min(ys), max(ys)
pad = (y1 - y0) * 0.05 or 1.0
y0, y1 = y0 - pad, y1 + pad


def px(s):
    return L + (s - x0) / max(x1 - x0, 1) * (W - L - R)


def py(v):
    return T + (y1 - v) / (y1 - y0) * (H - T - B)


def path_of(points):
    return " ".join(f"{'M' if i == 0 else 'L'}{px(s):.1f},{py(v):.1f}" for i, (s, v) in enumerate(points))


mean = []
for i in range(len(train)):
    window = train[max(0, i - 19): i + 1]
    mean.append((train[i][0], sum(v for _, v in window) / len(window)))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
for k in range(6):
    v = y0 + (y1 - y0) * k / 5
    svg.append(f'<line x1="{L}" x2="{W - R}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
for k in range(6):
    s = x0 + (x1 - x0) * k / 5
    svg.append(f'<text x="{px(s):.1f}" y="{H - B + 18}" text-anchor="middle">{s:.0f}</text>')
svg.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">step</text>')
svg.append(f'<path d="{path_of(train)}" fill="none" stroke="#9ecae1" stroke-width="1"/>')
svg.append(f'<path d="{path_of(mean)}" fill="none" stroke="#08519c" stroke-width="2"/>')
for s, v in val:
    svg.append(f'<circle cx="{px(s):.1f}" cy="{py(v):.1f}" r="4" fill="#d94801"/>')
svg.append(f'<text x="{W - R - 200}" y="{T + 14}" fill="#08519c">training loss (20-step mean)</text>')
svg.append(f'<text x="{W - R - 200}" y="{T + 30}" fill="#d94801">validation loss</text>')
svg.append("</svg>")
open(out, "w").write("\n".join(svg) + "\n")
print(f"wrote {out}: {len(train)} steps, {len(val)} evaluations")
