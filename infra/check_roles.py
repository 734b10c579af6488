#!/usr/bin/env python3
"""Check each function's role in the SAM-transformed template against the AWS calls it made.

    check_roles.py TRANSFORMED_TEMPLATE CALLS_DIR

CALLS_DIR holds what the integration tests recorded (`HERALD_AWS_CALLS`, tests/src/calls.rs): one
JSON line per (function, IAM action, template resource). Each function's role must:

- allow every recorded call on the resource it touched;
- use every statement: each action and each resource of a statement is needed by a recorded call
  or by what Lambda itself does with the role (below);
- name no `*` resource except for actions that have no resource-level permissions;
- attach no managed policy (their statements cannot be checked here, and SAM's add `*`).

What Lambda does with a function's role, per AWS's documentation, is derived from the template:
an `AWS::Lambda::EventSourceMapping` on an SQS queue polls it with `sqs:ReceiveMessage`,
`sqs:DeleteMessage` and `sqs:GetQueueAttributes` (Lambda developer guide, "Execution role
permissions" for Amazon SQS); a function writing to the log group in its `LoggingConfig` needs
`logs:CreateLogStream` and `logs:PutLogEvents` on it (the group exists, so no `CreateLogGroup`).

Exit status 0 when every role matches, 1 with one line per finding otherwise.
"""

import fnmatch
import json
import pathlib
import sys

# Lambda logical id -> the function name calls are recorded under (herald::startup::Function).
FUNCTIONS = {
    "ConnectFunction": "connect",
    "PostsFunction": "posts",
    "WebhooksFunction": "webhooks",
    "RetriesFunction": "retries",
}
# Actions without resource-level permissions: AWS requires `*` (Service Authorization Reference).
STAR_ONLY = {"dynamodb:DescribeEndpoints"}
SQS_POLLER = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
LOG_WRITER = ["logs:CreateLogStream", "logs:PutLogEvents"]


def as_list(value):
    return value if isinstance(value, list) else [value]


def logical(ref):
    """A template resource reference as the name calls are recorded with."""
    if ref == "*":
        return "*"
    if isinstance(ref, dict):
        if "Ref" in ref:
            return ref["Ref"]
        if "Fn::GetAtt" in ref:
            target = ref["Fn::GetAtt"]
            target = target.split(".") if isinstance(target, str) else target
            return target[0]
        if "Fn::Sub" in ref:
            text = ref["Fn::Sub"]
            text = text[0] if isinstance(text, list) else text
            # "${Table.Arn}/index/*" -> "Table/index/*"
            if text.startswith("${") and "}" in text:
                name = text[2 : text.index("}")].split(".")[0]
                return name + text[text.index("}") + 1 :]
    raise ValueError(f"cannot read resource reference {json.dumps(ref)}")


def role_of(template, function):
    role = template["Resources"][function]["Properties"].get("Role")
    if not (isinstance(role, dict) and "Fn::GetAtt" in role):
        raise ValueError(f"{function}: Role must be !GetAtt of a role in the template")
    return logical(role)


def statements(template, role_name):
    role = template["Resources"][role_name]["Properties"]
    found = []
    for policy in role.get("Policies", []):
        for statement in as_list(policy["PolicyDocument"]["Statement"]):
            found.append(statement)
    return role.get("ManagedPolicyArns", []), found


def service_needs(template, function):
    """What Lambda itself does with `function`'s role."""
    needs = set()
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::EventSourceMapping" and logical(props["FunctionName"]) == function:
            queue = logical(props["EventSourceArn"])
            needs.update((action, queue) for action in SQS_POLLER)
    group = template["Resources"][function]["Properties"].get("LoggingConfig", {}).get("LogGroup")
    if group is not None:
        needs.update((action, logical(group)) for action in LOG_WRITER)
    return needs


def check(template, calls):
    findings = []
    for function, name in FUNCTIONS.items():
        role = role_of(template, function)
        managed, granted = statements(template, role)
        for arn in managed:
            findings.append(f"{function}: managed policy {json.dumps(arn)} attached (its statements cannot be checked)")
        needed = {(c["action"], c["resource"]) for c in calls if c["function"] == name}
        if not needed:
            findings.append(f"{function}: no calls recorded for {name} (did the tests run with HERALD_AWS_CALLS?)")
            continue
        needed |= service_needs(template, function)
        rules = []
        for statement in granted:
            if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
                findings.append(f"{function}: only plain Allow statements are understood: {json.dumps(statement)}")
                continue
            actions = as_list(statement["Action"])
            resources = [logical(r) for r in as_list(statement["Resource"])]
            rules.append((actions, resources))
            for action in actions:
                if "*" in resources and action not in STAR_ONLY:
                    findings.append(f"{function}: {action} on * (it has resource-level permissions)")

        def allows(action, resource, actions, resources):
            return any(fnmatch.fnmatchcase(action, a) for a in actions) and any(
                r == "*" or fnmatch.fnmatchcase(resource, r) for r in resources
            )

        for action, resource in sorted(needed):
            if resource.startswith("?"):
                findings.append(f"{function}: {action} on a resource the template does not have: {resource[1:]}")
            elif not any(allows(action, resource, a, r) for a, r in rules):
                findings.append(f"{function}: {action} on {resource} is called but not allowed")
        for actions, resources in rules:
            for action in actions:
                if not any(allows(n_action, n_resource, [action], resources) for n_action, n_resource in needed):
                    findings.append(f"{function}: {action} on {resources} is allowed but never called")
            for resource in resources:
                if not any(allows(n_action, n_resource, actions, [resource]) for n_action, n_resource in needed):
                    findings.append(f"{function}: {resource} is named for {actions} but never touched by them")
    return findings


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[2].strip())
    template = json.loads(pathlib.Path(sys.argv[1]).read_text())
    calls = []
    for path in sorted(pathlib.Path(sys.argv[2]).glob("*.jsonl")):
        calls.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    findings = check(template, calls)
    for finding in findings:
        print(f"roles: {finding}", file=sys.stderr)
    per_function = {name: sorted({(c["action"], c["resource"]) for c in calls if c["function"] == name}) for name in FUNCTIONS.values()}
    summary = ", ".join(f"{name} {len(needs)}" for name, needs in per_function.items())
    print(f"roles: {len(calls)} recorded calls (distinct action and resource per function: {summary}); "
          f"{len(findings)} findings", file=sys.stderr)
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
