"""Item 5 of the prod profile (issue 22): metric-filter alarms on the trail log group (CIS AWS
Foundations 4.3/4.5/4.7/4.10/4.11/4.13), an RDS event subscription and the prod AlarmEmail Rule.

NOT applied: it adds 5,902 bytes to the minified template, which is then 108,164 > the 102,400
budget of SPEC R1. Run `python3 scripts/prod-alarms-pending-budget.py && python -m loanstack fmt`
from the repository root once the budget is decided; LS018 then checks the key statement."""
import json
import sys
from collections import OrderedDict

P = sys.argv[1] if len(sys.argv) > 1 else "lib/TapStack.json"
t = json.load(open(P), object_pairs_hook=OrderedDict)
TAGS = [{"Key": "Environment", "Value": {"Ref": "EnvironmentType"}},
        {"Key": "CostCenter", "Value": {"Ref": "CostCenter"}},
        {"Key": "MigrationPhase", "Value": {"Ref": "MigrationPhase"}}]
# CIS AWS Foundations Benchmark v1.4 section 4 metric filters (4.3 root use, 4.5 CloudTrail
# configuration changes, 4.7 disabling or scheduled deletion of CMKs, 4.10/4.11/4.13 security
# group, NACL and route table changes), the key one narrowed to this stack's key
FILTERS = OrderedDict([
    ("TrailChanges", ("trailchanges", '{($.eventSource=cloudtrail.amazonaws.com)&&(($.eventName=StopLogging)||($.eventName=DeleteTrail)||($.eventName=UpdateTrail))}', "The trail was stopped, deleted or changed: audit evidence is at risk.")),
    ("KeyChanges", ("keychanges", {"Fn::Sub": '{($.eventSource=kms.amazonaws.com)&&(($.eventName=DisableKey)||($.eventName=ScheduleKeyDeletion))&&($.resources[0].ARN="${KMSKey.Arn}")}'}, "The stack's key was disabled or scheduled for deletion: CancelKeyDeletion / EnableKey now.")),
    ("NetworkChanges", ("networkchanges", '{($.eventName=AuthorizeSecurityGroup*)||($.eventName=RevokeSecurityGroup*)||($.eventName=*SecurityGroup)||($.eventName=*NetworkAcl*)||($.eventName=*Route)||($.eventName=*RouteTable*)}', "A security group, network ACL or route table changed.")),
    ("RootUse", ("rootuse", '{$.userIdentity.type="Root"&&$.userIdentity.invokedBy NOT EXISTS&&$.eventType!="AwsServiceEvent"}', "The account's root user signed in or made a call.")),
])
R = t["Resources"]
new = OrderedDict()
for k, v in R.items():
    new[k] = v
    if k == "Trail":
        for name, (short, pattern, desc) in FILTERS.items():
            new[f"{name}Filter"] = OrderedDict([
                ("Type", "AWS::Logs::MetricFilter"), ("Condition", "CreateTrail"),
                ("Properties", OrderedDict([
                    ("FilterName", {"Fn::Sub": f"filter-{short}-${{EnvironmentSuffix}}"}),
                    ("LogGroupName", {"Ref": "TrailLogGroup"}),
                    ("FilterPattern", pattern),
                    ("MetricTransformations", [OrderedDict([("MetricNamespace", {"Fn::Sub": "LoanAudit/${EnvironmentSuffix}"}), ("MetricName", name), ("MetricValue", "1")])]),
                ])),
            ])
    if k == "DatabaseMemoryAlarm":
        for name, (short, pattern, desc) in FILTERS.items():
            new[f"{name}Alarm"] = OrderedDict([
                ("Type", "AWS::CloudWatch::Alarm"), ("Condition", "CreateTrail"),
                ("Properties", OrderedDict([
                    ("AlarmName", {"Fn::Sub": f"alarm-{short}-${{EnvironmentSuffix}}"}),
                    ("AlarmDescription", desc),
                    ("Namespace", {"Fn::Sub": "LoanAudit/${EnvironmentSuffix}"}),
                    ("MetricName", name), ("Statistic", "Sum"), ("Period", 300), ("EvaluationPeriods", 1),
                    ("Threshold", 1), ("ComparisonOperator", "GreaterThanOrEqualToThreshold"),
                    ("TreatMissingData", "notBreaching"),
                    ("AlarmActions", [{"Ref": "AlarmTopic"}]),
                    ("Tags", TAGS),
                ])),
            ])
        new["DatabaseEventSubscription"] = OrderedDict([
            ("Type", "AWS::RDS::EventSubscription"),
            ("Properties", OrderedDict([
                ("SubscriptionName", {"Fn::Sub": "rdsevents-loanprocessing-${EnvironmentSuffix}"}),
                ("Enabled", True),
                ("SnsTopicArn", {"Ref": "AlarmTopic"}),
                ("SourceType", "db-cluster"),
                ("SourceIds", [{"Ref": "DBCluster"}]),
                ("EventCategories", ["failover", "failure", "maintenance"]),
                ("Tags", TAGS),
            ])),
        ])
t["Resources"] = new
# the RDS event publisher must be let use the topic's key (SNS SSE with a CMK)
stmts = t["Resources"]["KMSKey"]["Properties"]["KeyPolicy"]["Statement"]
stmts.append(OrderedDict([
    ("Sid", "RdsEventsToTopic"), ("Effect", "Allow"),
    ("Principal", {"Service": "events.rds.amazonaws.com"}),
    ("Action", ["kms:Decrypt", "kms:GenerateDataKey*"]), ("Resource", "*"),
    ("Condition", {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}, "ArnEquals": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:cluster:aurora-loanprocessing-${EnvironmentSuffix}"}}}),
]))
# prod refuses to deploy without an alarm subscriber
rules = OrderedDict([("ProdNeedsAlarmEmail", OrderedDict([
    ("RuleCondition", {"Fn::Equals": [{"Ref": "EnvironmentType"}, "prod"]}),
    ("Assertions", [{"Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}, "AssertDescription": "prod needs AlarmEmail: its alarms must reach someone."}]),
]))])
out = OrderedDict()
for k, v in t.items():
    if k == "Conditions": out["Rules"] = rules
    out[k] = v
json.dump(out, open(P, "w"), indent=2, ensure_ascii=False); open(P, "a").write("\n")
