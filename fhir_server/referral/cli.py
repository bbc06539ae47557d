"""``fhir-server rules``: check regional referral rule sets before deploying them.

``fhir-server rules check [DIR ...]`` loads the shipped sets plus every JSON/YAML file in the given
directories exactly as the server does at start-up (schema, ``extends``, known evaluators) and
prints one line per set; ``--show ID`` prints the resolved set (parameters merged, rules by id).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def _check(args: argparse.Namespace) -> int:
    from .rules import RULES_DIR, RuleSetError, load_rule_sets

    try:
        sets = load_rule_sets([RULES_DIR, *[Path(d) for d in args.directories]])
    except (RuleSetError, OSError, ValueError) as error:
        print(f"invalid: {error}")
        return 1
    if args.show:
        if args.show not in sets:
            print(f"no rule set '{args.show}' (known: {', '.join(sorted(sets))})")
            return 1
        rule_set = sets[args.show]
        print(json.dumps({"id": rule_set.id, "title": rule_set.title, "match": rule_set.match,
                          "parameters": rule_set.parameters, "rules": [asdict(r) for r in rule_set.rules]},
                         ensure_ascii=False, indent=2))
        return 0
    for set_id, rule_set in sorted(sets.items()):
        errors = sum(r.severity == "error" for r in rule_set.rules)
        warnings = len(rule_set.rules) - errors
        where = ", ".join(rule_set.match.get("state", []) + rule_set.match.get("city", [])) or "default"
        print(f"{set_id}: {len(rule_set.rules)} rules ({errors} error, {warnings} warning/information); "
              f"applies to: {where}")
    return 0


def add_parser(subparsers) -> None:
    rules = subparsers.add_parser("rules", help="regional referral rule sets")
    commands = rules.add_subparsers(dest="rules_command", required=True)
    check = commands.add_parser("check", help="validate rule-set files as the server loads them")
    check.add_argument("directories", nargs="*", help="directories with more rule-set files (JSON/YAML)")
    check.add_argument("--show", metavar="ID", help="print the resolved rule set")
    check.set_defaults(func=_check)
