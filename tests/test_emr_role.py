"""The EMR Serverless job role (emr/job-role-*.json, docs/emr.md): linted with parliament, able to
do what the job does and nothing more, and the same JSON on the page as in the files."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from parliament import analyze_policy_string

from churn.config import PROJECT_ROOT
from tests.emrjob import EMR_RELEASE, EMR_SPARK

POLICY = PROJECT_ROOT / "emr" / "job-role-policy.json"
TRUST = PROJECT_ROOT / "emr" / "job-role-trust.json"
DOCS = PROJECT_ROOT / "docs" / "emr.md"
BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"
READ_ONLY, WRITTEN = ("code", "artifacts", "models", "input"), ("output", "logs")


def findings(path: Path) -> list[tuple[str, str]]:
    policy = analyze_policy_string(path.read_text(), include_community_auditors=True)
    return [(finding.issue, str(finding.detail)) for finding in policy.findings]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def allows(action: str, resource: str, prefix: str | None = None) -> bool:
    """Whether the policy allows ``action`` on ``resource`` (IAM's wildcards; Allow only, as the
    policy has no Deny; ``s3:prefix`` is the one condition it uses)."""
    for statement in json.loads(POLICY.read_text())["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatchcase(action, a) for a in as_list(statement["Action"])):
            continue
        if not any(fnmatchcase(resource, r) for r in as_list(statement["Resource"])):
            continue
        condition = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if condition is None or (
            prefix is not None and any(fnmatchcase(prefix, p) for p in as_list(condition))
        ):
            return True
    return False


def test_parliament_finds_nothing_in_the_permissions():
    assert findings(POLICY) == []


def test_parliament_finds_nothing_in_the_trust_policy_but_its_missing_resource():
    # A trust policy names who may assume the role, never a Resource; parliament reads every
    # policy as an identity policy and says so, and finds nothing else.
    assert findings(TRUST) == [("MALFORMED", "Statement contains neither Resource nor NotResource")]


def test_only_emr_serverless_of_this_account_may_assume_the_role():
    (statement,) = json.loads(TRUST.read_text())["Statement"]
    assert statement["Principal"] == {"Service": "emr-serverless.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    conditions = statement["Condition"]
    assert conditions["StringEquals"]["aws:SourceAccount"] == "ACCOUNT_ID"
    assert conditions["ArnLike"]["aws:SourceArn"].startswith("arn:aws:emr-serverless:")


@pytest.mark.parametrize("folder", READ_ONLY + WRITTEN)
def test_the_job_lists_only_its_own_folders(folder):
    assert allows("s3:ListBucket", BUCKET, f"{folder}/customers.parquet/")
    assert not allows("s3:ListBucket", BUCKET, "")  # not the whole bucket
    assert not allows("s3:ListBucket", BUCKET, "private/")


@pytest.mark.parametrize("folder", READ_ONLY)
def test_the_job_reads_but_never_writes_its_inputs(folder):
    assert allows("s3:GetObject", f"{BUCKET}/{folder}/file")
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not allows(action, f"{BUCKET}/{folder}/file")


def test_the_job_writes_scores_rejects_and_logs_and_nothing_else():
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:GetObject"):
        assert allows(action, f"{BUCKET}/output/scores.parquet/part-0.parquet")
    assert allows("s3:PutObject", f"{BUCKET}/logs/applications/x/stdout.gz")
    assert not allows("s3:DeleteObject", f"{BUCKET}/logs/applications/x/stdout.gz")
    for resource in (f"{BUCKET}/private/file", "arn:aws:s3:::another-bucket/output/file"):
        assert not allows("s3:GetObject", resource) and not allows("s3:PutObject", resource)
    assert not allows("s3:DeleteBucket", BUCKET) and not allows("iam:PassRole", "*")


def documented_json() -> list[object]:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    return [json.loads(block) for block in blocks]


def test_the_docs_show_the_policies_as_they_are_in_the_files():
    assert documented_json() == [json.loads(POLICY.read_text()), json.loads(TRUST.read_text())]


def test_the_docs_name_the_release_its_spark_and_the_bounds():
    text = DOCS.read_text()
    assert f"--release-label {EMR_RELEASE}" in text and f"Spark {EMR_SPARK}" in text
    assert "--maximum-capacity" in text and "--execution-timeout-minutes" in text
