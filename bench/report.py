"""`python -m bench.report [results.json]`: the figures as Markdown tables, for
docs/performance.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def table(rows: list[dict[str, Any]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(row[k]) for k in head) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json")
    results = json.loads(path.read_text())
    print(f"{results['date']}, {results['machine']}\n")
    for section in ("ingestion", "passes", "cleanup", "idle"):
        print(f"## {section}\n\n{table(results[section])}\n")


if __name__ == "__main__":
    main()
