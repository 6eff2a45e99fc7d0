"""Every judge of the template, in one place: the project's own rules per requirement (`rules`,
LS001...), the field's tools (`field_tools`: cfn-lint in process, checkov), AWS Control Tower's
proactive controls (`control_tower`), parliament and cfripper (`judges`), and the table over all
of them (`report`), each finding located by JSON pointer and line (`locate`). cfn-lint's package
data is read through `cfnlint_data` only."""
