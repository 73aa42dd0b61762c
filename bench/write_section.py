#!/usr/bin/env python3
"""Replace (or append) one `## ` section of a markdown file with stdin.

usage: write_section.py FILE "## Heading" < body
The section runs from its heading to the next `## ` heading.
"""
import sys

path, heading = sys.argv[1], sys.argv[2]
body = sys.stdin.read().strip()
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
section = f"{heading}\n\n{body}\n"
start = text.find(heading)
if start < 0:
    text = text.rstrip() + "\n\n" + section
else:
    end = text.find("\n## ", start + len(heading))
    text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
open(path, "w").write(text)
