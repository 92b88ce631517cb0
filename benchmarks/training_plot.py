"""Plot a training run's curves from its log.jsonl (loss or reward per step, held-out loss).

python benchmarks/training_plot.py runs/train/writer-sft benchmarks/training_sft.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(run: str, out: str) -> None:
    rows = [json.loads(x) for x in (Path(run) / "log.jsonl").read_text().splitlines() if x.strip()]
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r for r in rows if "loss" in r and "seconds" in r]
    if steps and "mean_reward" not in steps[0]:
        xs = [r["step"] for r in steps]
        ys = [r["loss"] for r in steps]
        ax.plot(xs, ys, ".", alpha=0.35, label="train loss (one example per step)")
        k = 10
        avg = [
            sum(ys[max(0, i - k + 1) : i + 1]) / len(ys[max(0, i - k + 1) : i + 1])
            for i in range(len(ys))
        ]
        ax.plot(xs, avg, "-", label=f"train loss, mean of last {k}")
        ev = [r for r in rows if "eval_loss" in r]
        ev0 = (
            json.loads((Path(run) / "result.json").read_text()).get("eval_loss", {})
            if (Path(run) / "result.json").is_file()
            else {}
        )
        pts = sorted({int(k): v for k, v in ev0.items()}.items()) or [
            (r["step"], r["eval_loss"]) for r in ev
        ]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="held-out loss")
        ax.set_ylabel("cross-entropy on reply tokens")
    else:
        rs = [r for r in rows if "mean_reward" in r or "reward" in r]
        ax.plot(
            [r["step"] for r in rs],
            [r.get("mean_reward", r.get("reward")) for r in rs],
            "o-",
            label="mean reward",
        )
        ax.set_ylabel("reward")
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
