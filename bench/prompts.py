"""What a Chinese concept costs to resolve to English, after start-up (issue 12: under 1 ms).

    python bench/prompts.py [--rounds 2000]

Times, in one process: the start-up (loading the lexicon, OpenCC and jieba's dictionary: what the
server's warm-up pays), then `parse_prompt` per concept for English prompts (no resolution: the
baseline), Chinese concepts seen before (the translation cache), and Chinese concepts never seen
(lexicon lookup or jieba + composition, the cache cleared before each). Prints microseconds per
concept (median and p99) and the Chinese/English ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

from segserve.prompts import parse_prompt
from segserve.prompts.chinese import _translate, warm_up

ENGLISH = ["person", "red car", "worker with helmet", "t-shirt", "dog", "traffic light"]
# Whole lexicon terms, traditional spellings and compositions that jieba must cut and rebuild.
CHINESE = [
    "人", "紅色汽車", "戴安全帽的工人", "手提包", "桌子上的杯子", "穿反光背心的工人", "红色 car", "一辆白色的小汽车",
]  # fmt: skip


def per_concept(prompts: list[str], rounds: int, clear: bool) -> list[float]:
    """Microseconds per concept, one sample per prompt call."""
    samples = []
    for _ in range(rounds):
        for prompt in prompts:
            if clear:
                _translate.cache_clear()
            started = time.perf_counter()
            parse_prompt(prompt)
            samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    started = time.perf_counter()
    warm_up()
    print(f"start-up (lexicon + OpenCC + jieba): {time.perf_counter() - started:.2f} s")
    rows = {
        "english (baseline)": per_concept(ENGLISH, args.rounds, clear=False),
        "chinese, seen before": per_concept(CHINESE, args.rounds, clear=False),
        "chinese, never seen": per_concept(CHINESE, max(args.rounds // 10, 1), clear=True),
    }
    base = statistics.median(rows["english (baseline)"])
    print(f"{'concept':<22} {'median us':>10} {'p99 us':>8} {'x english':>10}")
    for name, samples in rows.items():
        samples.sort()
        median, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
        print(f"{name:<22} {median:>10.1f} {p99:>8.1f} {median / base:>10.1f}")


if __name__ == "__main__":
    main()
