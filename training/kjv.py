"""The language model's text: the King James Version of the Bible (1611, public domain), as
Debian's `bible-kjv-text` package ships it, read with that package's `bible` program (Debian
package `bible-kjv`; scripts/setup.sh installs both). A verse is a document: the tokenizer and the
model see one verse at a time, each ended by the end-of-sequence token, so a generation that
finishes its verse stops by itself.

Held out: every 20th chapter (chapters 20, 40, ... in canonical order), about 5% of the verses.
"""
import hashlib
import re
import shutil
import subprocess

HELDOUT_EVERY = 20


def read_verses():
    """-> list of chapters, each a list of verse strings, in canonical order."""
    if shutil.which("bible") is None:
        raise SystemExit("the `bible` program is missing: run scripts/setup.sh (it installs Debian's "
                         "bible-kjv and bible-kjv-text)")
    text = subprocess.run(["bible", "-l0", "Gen1:1-Rev22:21"], check=True, capture_output=True,
                          text=True).stdout
    chapters, verse = [], re.compile(r"^\s+(\d+)\s+(.*\S)\s*$")
    for line in text.splitlines():
        if not line.strip():
            continue
        found = verse.match(line)
        if found is None:  # a "Book N" heading opens a chapter
            chapters.append([])
        elif chapters:
            chapters[-1].append(found.group(2))
    return chapters


def split():
    """-> (train verses, held-out verses, sha256 of the whole text)."""
    chapters = read_verses()
    train, held = [], []
    for i, chapter in enumerate(chapters, start=1):
        (held if i % HELDOUT_EVERY == 0 else train).extend(chapter)
    digest = hashlib.sha256("\n".join(v for c in chapters for v in c).encode()).hexdigest()
    return train, held, digest
