"""Every judge of the template, in one place: the project's own rules per requirement (`rules`,
LS001...), the field's tools (`field_tools`: cfn-lint, checkov), AWS Control Tower's proactive
controls (`control_tower`), and the table over all of them (`report`)."""
