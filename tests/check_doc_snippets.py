#!/usr/bin/env python3
"""Checks that every ```cpp block of a Markdown document is a verbatim excerpt of one of the
given source files, so that a guide cannot drift from the code that is compiled and tested.

    python3 check_doc_snippets.py DOC SOURCE [SOURCE ...]

Exits 1 naming the first block that no source contains (or if the document has no block)."""
import re
import sys


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    doc = open(argv[1], encoding="utf-8").read()
    sources = {path: open(path, encoding="utf-8").read() for path in argv[2:]}
    blocks = re.findall(r"^```cpp\n(.*?)^```$", doc, flags=re.S | re.M)
    if not blocks:
        print(f"{argv[1]}: no ```cpp blocks", file=sys.stderr)
        return 1
    for i, block in enumerate(blocks, 1):
        if not any(block in text for text in sources.values()):
            first = block.splitlines()[0] if block.strip() else "<empty>"
            print(f"{argv[1]}: code block {i} (starting '{first}') is in none of {', '.join(sources)}",
                  file=sys.stderr)
            return 1
    print(f"{argv[1]}: {len(blocks)} code blocks, each verbatim in {', '.join(sources)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
