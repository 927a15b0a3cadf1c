"""The retrain admission policy: RBAC lets the drift job (and the scorer, when POST
/retrain is on) create Jobs, any Jobs; the ValidatingAdmissionPolicy admits from
exactly those callers only the training CronJob's own template. Rendered only when
there is a caller, and cluster-scoped."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.helm.chart import NAMESPACE, RELEASE, Rendered, name, pod_spec

CALLER_CONDITION = re.compile(r"request\.userInfo\.username in (\[.*\])")


def service_account_user(rendered: Rendered, kind: str, component: str) -> str:
    """The API server's username of the account a workload runs as."""
    account = pod_spec(rendered.get(kind, name(component)))["serviceAccountName"]
    return f"system:serviceaccount:{NAMESPACE}:{account}"


def policy_and_binding(
    rendered: Rendered,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    policies = rendered.kinds("ValidatingAdmissionPolicy")
    bindings = rendered.kinds("ValidatingAdmissionPolicyBinding")
    assert len(policies) == len(bindings) <= 1
    return (policies[0], bindings[0]) if policies else None


def callers(policy: dict[str, Any]) -> set[str]:
    (condition,) = policy["spec"]["matchConditions"]
    found = CALLER_CONDITION.fullmatch(condition["expression"])
    assert found, condition["expression"]
    users: list[str] = json.loads(found.group(1))
    assert len(users) == len(set(users))
    return set(users)


def expected_callers(rendered: Rendered) -> set[str]:
    values = rendered.values
    users = set()
    if values["drift"]["enabled"] and values["drift"]["retrain"]["mode"] == "kubernetes":
        users.add(service_account_user(rendered, "CronJob", "drift"))
    if values["scorer"]["enabled"] and values["scorer"]["retrain"]["mode"] == "kubernetes":
        users.add(service_account_user(rendered, "Deployment", "scorer"))
    return users


def test_the_policy_admits_only_the_training_template_from_the_retrain_callers(
    scenario: Rendered,
) -> None:
    expected = expected_callers(scenario)
    found = policy_and_binding(scenario)
    if not expected:
        assert found is None, "no caller creates Jobs: nothing to guard"
        return
    assert found is not None
    policy, binding = found
    for doc in (policy, binding):
        assert doc["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert "namespace" not in doc["metadata"], "cluster-scoped"
    # Named after the release and its namespace: two releases never share one.
    assert RELEASE in policy["metadata"]["name"]
    assert NAMESPACE in policy["metadata"]["name"]
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["paramKind"] == {"apiVersion": "batch/v1", "kind": "CronJob"}
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == ["batch"]
    assert rule["resources"] == ["jobs"]
    assert "CREATE" in rule["operations"]
    assert callers(policy) == expected
    expressions = " ".join(v["expression"] for v in spec["validations"])
    assert "params.spec.jobTemplate.spec.template.spec" in expressions
    assert "ownerReferences" in expressions
    # The binding: this policy, this release's namespace, the training CronJob as params,
    # and refusal when that CronJob is missing.
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["paramRef"] == {
        "name": name("training"),
        "namespace": NAMESPACE,
        "parameterNotFoundAction": "Deny",
    }
    scenario.get("CronJob", binding["spec"]["paramRef"]["name"])
    assert binding["spec"]["matchResources"] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    }


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("", {"drift"}),
        ("scorer.retrain.mode=kubernetes", {"drift", "scorer"}),
        ("drift.retrain.mode=disabled,scorer.retrain.mode=kubernetes", {"scorer"}),
        ("drift.enabled=false,scorer.retrain.mode=kubernetes", {"scorer"}),
        ("scorer.enabled=false,scorer.retrain.mode=kubernetes", {"drift"}),
        ("drift.retrain.mode=disabled", set()),
        ("training.retrainAdmissionPolicy.enabled=false", set()),
        (
            "drift.serviceAccount.name=robot,scorer.serviceAccount.name=api,"
            "scorer.retrain.mode=kubernetes",
            {"drift", "scorer"},
        ),
    ],
)
def test_the_callers_are_exactly_the_accounts_that_create_retrain_jobs(
    render: Callable[..., Rendered], settings: str, expected: set[str]
) -> None:
    rendered = render("default", *(["--set", settings] if settings else []))
    found = policy_and_binding(rendered)
    if not expected:
        assert found is None
        return
    assert found is not None
    workloads = {"drift": ("CronJob", "drift"), "scorer": ("Deployment", "scorer")}
    users = {service_account_user(rendered, *workloads[caller]) for caller in expected}
    assert callers(found[0]) == users
    if "robot" in settings:
        assert users == {
            f"system:serviceaccount:{NAMESPACE}:robot",
            f"system:serviceaccount:{NAMESPACE}:api",
        }
