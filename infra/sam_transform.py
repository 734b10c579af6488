"""Transforms template.yaml offline with the SAM translator, as CloudFormation does at deploy time.

    python infra/sam_transform.py template.yaml OUT.json

cfn-lint and `sam validate --lint` read the untransformed template, so faults that only exist
after the transform (a dependency cycle between the HTTP API and a function, a policy SAM adds)
are invisible to them; `infra/dev` runs cfn-lint on OUT.json too. Offline: `CodeUri` is replaced
by an S3 URI (what `sam package` would write) and managed policies resolve to their ARNs by name,
so no AWS call is made.
"""

import json
import os
import sys

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform


class LocalPolicies:
    """Managed policy names resolve without IAM (the translator asks only for names it meets)."""

    def load(self):
        return {}


def main(source, out):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://herald-artifacts/function.zip"
    transformed = transform(template, {}, LocalPolicies())
    with open(out, "w", encoding="utf-8") as f:
        json.dump(transformed, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
