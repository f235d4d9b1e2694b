#!/usr/bin/env python3
"""Embed policies/*.yaml into a C header: warden_presets[] = {{name, text}, ...}."""
import os
import sys

out, *inputs = sys.argv[1:]
with open(out, "w") as f:
    f.write("/* Generated from the files in policies/ by scripts/embed-presets.py. */\n")
    f.write("#ifndef WARDEN_PRESETS_H\n#define WARDEN_PRESETS_H\n")
    f.write("static const struct {\n\tconst char *name;\n\tconst char *text;\n} warden_presets[] = {\n")
    for path in inputs:
        name = os.path.splitext(os.path.basename(path))[0]
        text = open(path, encoding="utf-8").read()
        lit = "".join(
            "\\n\"\n\t\"" if ch == "\n" else "\\\"" if ch == '"' else "\\\\" if ch == "\\" else ch
            for ch in text
        )
        f.write(f'\t{{"{name}",\n\t "{lit}"}},\n')
    f.write("\t{NULL, NULL},\n};\n#endif\n")
