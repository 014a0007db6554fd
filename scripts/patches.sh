#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Export the series as mail-ready patches: build/patches/ gets
# `git format-patch --cover-letter --base=vexfs-base` of vexfs-base..vexfs in
# the assembled tree (build/linux, see assemble.sh), with the cover letter
# filled from series/cover-letter.txt (first line: subject; then the body).
#
# Environment:
#   SUBJECT_PREFIX  subject prefix (default "RFC PATCH")
#   REROLL          reroll count, e.g. 2 for "[RFC PATCH v2 n/N]" (default none)
#   PATCHES_DIR     output directory (default build/patches)
#
# The output is deterministic: the same series gives the same files.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KTREE=$BUILD/linux
OUT=${PATCHES_DIR:-$BUILD/patches}
TEMPLATE=$TOP/series/cover-letter.txt
PREFIX=${SUBJECT_PREFIX:-RFC PATCH}

git -C "$KTREE" rev-parse -q --verify vexfs-base >/dev/null &&
	git -C "$KTREE" rev-parse -q --verify vexfs >/dev/null ||
	die "no assembled tree: run 'make tree' first"
[ -f "$TEMPLATE" ] || die "no cover letter template $TEMPLATE"

# The cover letter's From: and Date: come from the committer identity.
export GIT_COMMITTER_NAME="$SERIES_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$SERIES_AUTHOR_EMAIL"
export GIT_COMMITTER_DATE="$SERIES_DATE"

rm -rf "$OUT"
mkdir -p "$OUT"
args=(--cover-letter --base=vexfs-base --numbered --subject-prefix="$PREFIX"
	--to=linux-fsdevel@vger.kernel.org --cc=rust-for-linux@vger.kernel.org
	--no-signature -o "$OUT")
[ -n "${REROLL:-}" ] && args+=(--reroll-count="$REROLL")
# Ignore the user's format.* settings (signature, thread, notes, ...).
git -C "$KTREE" -c format.signature= -c format.notes=false -c format.coverFromDescription=default \
	-c diff.noprefix=false -c diff.mnemonicPrefix=false -c diff.renames=true \
	format-patch "${args[@]}" vexfs-base..vexfs >/dev/null

cover=$(ls "$OUT"/*0000-cover-letter.patch)
python3 - "$cover" "$TEMPLATE" <<'EOF'
import sys

cover, template = sys.argv[1:3]
lines = open(template).read().splitlines()
# Lines starting with '#' are comments of the template.
lines = [l for l in lines if not l.startswith("#")]
while lines and not lines[0].strip():
    lines.pop(0)
subject, body = lines[0].strip(), "\n".join(lines[1:]).strip("\n")
text = open(cover).read()
for placeholder in ("*** SUBJECT HERE ***", "*** BLURB HERE ***"):
    if text.count(placeholder) != 1:
        sys.exit(f"cover letter: expected one {placeholder!r}")
text = text.replace("*** SUBJECT HERE ***", subject).replace("*** BLURB HERE ***", body)
open(cover, "w").write(text)
EOF

log "$(ls "$OUT" | wc -l) files in ${OUT#"$TOP"/}: $(head -n 20 "$cover" | grep -m1 '^Subject:' | cut -c10-)"
