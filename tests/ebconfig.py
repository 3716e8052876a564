"""Reading .ebextensions the way Elastic Beanstalk does, and what its option tables allow.

Option semantics from the AWS Elastic Beanstalk Developer Guide, "General options for all
environments":
https://docs.aws.amazon.com/elasticbeanstalk/latest/dg/command-options-general.html
"""

from __future__ import annotations

from pathlib import Path

import yaml

from churn.config import PROJECT_ROOT

EBEXTENSIONS = PROJECT_ROOT / ".ebextensions"
# aws:autoscaling:launchconfiguration MonitoringInterval: "1 minute" or "5 minute" (default).
MONITORING_MINUTES = {"1 minute": 1, "5 minute": 5}
DEFAULT_MONITORING = "5 minute"
# EC2 instance metrics come at the launch configuration's monitoring interval; the load
# balancer's come every minute whatever it is.
INSTANCE_METRICS = {
    "CPUUtilization",
    "NetworkIn",
    "NetworkOut",
    "DiskWriteOps",
    "DiskReadBytes",
    "DiskReadOps",
    "DiskWriteBytes",
}
# aws:autoscaling:trigger MeasureName: the metrics a trigger can use.
TRIGGER_METRICS = INSTANCE_METRICS | {
    "Latency",
    "RequestCount",
    "HealthyHostCount",
    "UnhealthyHostCount",
    "TargetResponseTime",
}


def config_files() -> list[Path]:
    return sorted(EBEXTENSIONS.glob("*.config"))


def option_settings() -> dict[str, dict[str, object]]:
    """namespace -> {option: value}, merged across the .config files in name order."""
    merged: dict[str, dict[str, object]] = {}
    for path in config_files():
        document = yaml.safe_load(path.read_text())
        for namespace, options in document.get("option_settings", {}).items():
            merged.setdefault(namespace, {}).update(options)
    return merged


def scaling_problems(settings: dict[str, dict[str, object]]) -> list[str]:
    """Why the scaling trigger and instance types could not work as written (empty: they can)."""
    trigger = settings.get("aws:autoscaling:trigger", {})
    launch = settings.get("aws:autoscaling:launchconfiguration", {})
    instances = settings.get("aws:ec2:instances", {})
    problems: list[str] = []
    metric = trigger.get("MeasureName", "NetworkOut")
    period = int(trigger.get("Period", 5))
    evaluations = int(trigger.get("EvaluationPeriods", 1))
    breach = int(trigger.get("BreachDuration", 5))
    if metric not in TRIGGER_METRICS:
        problems.append(f"MeasureName {metric} is not a trigger metric")
    interval = str(launch.get("MonitoringInterval", DEFAULT_MONITORING))
    if interval not in MONITORING_MINUTES:
        problems.append(f"MonitoringInterval {interval!r} is not one of {set(MONITORING_MINUTES)}")
    elif metric in INSTANCE_METRICS and period % MONITORING_MINUTES[interval]:
        problems.append(
            f"a {period}-minute Period on {metric} needs data every {period} minutes; "
            f"instances report every {MONITORING_MINUTES[interval]} ({interval})"
        )
    # The guide: BreachDuration = Period * EvaluationPeriods, or EB changes one of them.
    if breach != period * evaluations:
        problems.append(
            f"BreachDuration {breach} is not Period {period} x EvaluationPeriods {evaluations}"
        )
    types = [t.strip() for t in str(instances.get("InstanceTypes", "")).split(",") if t.strip()]
    spot = str(instances.get("EnableSpot", "false")).lower() == "true"
    if not types:
        problems.append("no InstanceTypes")
    elif not spot and len(types) > 1:
        problems.append(f"without Spot only the first of InstanceTypes {types} is used")
    elif len(types) > 10:
        problems.append("InstanceTypes takes at most 10 types")
    return problems


# Documented namespaces and option names, from the AWS Elastic Beanstalk Developer Guide,
# "General options for all environments":
# https://docs.aws.amazon.com/elasticbeanstalk/latest/dg/command-options-general.html
DOCUMENTED_OPTIONS: dict[str, set[str]] = {
    "aws:autoscaling:asg": {
        "Availability Zones",
        "Cooldown",
        "Custom Availability Zones",
        "MinSize",
        "MaxSize",
    },
    "aws:autoscaling:launchconfiguration": {
        "DisableIMDSv1",
        "EC2KeyName",
        "IamInstanceProfile",
        "ImageId",
        "InstanceType",
        "MonitoringInterval",
        "SecurityGroups",
        "SSHSourceRestriction",
        "BlockDeviceMappings",
        "RootVolumeType",
        "RootVolumeSize",
        "RootVolumeIOPS",
    },
    "aws:autoscaling:trigger": {
        "BreachDuration",
        "LowerBreachScaleIncrement",
        "LowerThreshold",
        "MeasureName",
        "Period",
        "EvaluationPeriods",
        "Statistic",
        "Unit",
        "UpperBreachScaleIncrement",
        "UpperThreshold",
    },
    "aws:ec2:instances": {
        "EnableSpot",
        "InstanceTypes",
        "SpotFleetOnDemandBase",
        "SpotFleetOnDemandAboveBasePercentage",
        "SpotMaxPrice",
    },
    "aws:elasticbeanstalk:environment": {
        "EnvironmentType",
        "ServiceRole",
        "LoadBalancerType",
        "LoadBalancerIsShared",
    },
    "aws:elasticbeanstalk:environment:process:default": {
        "DeregistrationDelay",
        "HealthCheckInterval",
        "HealthCheckPath",
        "HealthCheckTimeout",
        "HealthyThresholdCount",
        "MatcherHTTPCode",
        "Port",
        "Protocol",
        "StickinessEnabled",
        "StickinessLBCookieDuration",
        "StickinessType",
        "UnhealthyThresholdCount",
    },
    "aws:elasticbeanstalk:healthreporting:system": {
        "SystemType",
        "ConfigDocument",
        "HealthCheckSuccessThreshold",
        "EnhancedHealthAuthEnabled",
    },
    "aws:elasticbeanstalk:command": {
        "DeploymentPolicy",
        "Timeout",
        "BatchSizeType",
        "BatchSize",
        "IgnoreHealthCheck",
    },
    "aws:elasticbeanstalk:cloudwatch:logs": {"StreamLogs", "DeleteOnTerminate", "RetentionInDays"},
    # aws:elbv2:listener:default (port 80) and aws:elbv2:listener:listener_port share options.
    "aws:elbv2:listener": {
        "DefaultProcess",
        "ListenerEnabled",
        "Protocol",
        "Rules",
        "SSLCertificateArns",
        "SSLPolicy",
    },
}
ANY_NAME = "aws:elasticbeanstalk:application:environment"  # environment properties: any name
# Environment properties filled from Secrets Manager or SSM Parameter Store: any name, an ARN.
SECRETS = "aws:elasticbeanstalk:application:environmentsecrets"


def documented(namespace: str) -> set[str]:
    """The option names the guide lists for ``namespace`` (listener ports share one table)."""
    listener, _, port = namespace.rpartition(":")
    if listener == "aws:elbv2:listener" and (port == "default" or port.isdigit()):
        return DOCUMENTED_OPTIONS[listener]
    assert namespace in DOCUMENTED_OPTIONS, namespace
    return DOCUMENTED_OPTIONS[namespace]


def assert_documented(settings: dict[str, dict[str, object]]) -> None:
    for namespace, options in settings.items():
        if namespace not in (ANY_NAME, SECRETS):
            unknown = set(options) - documented(namespace)
            assert not unknown, f"{namespace}: {unknown}"
