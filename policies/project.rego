# METADATA
# title: Approval of a project application
# description: |
#   Can the board approve this application now? Safe projects: a complete application
#   for research or planning, published for public comment until the comment period
#   ended, with a public benefit, no red-line use, fair terms for commercial sponsors,
#   a justification for every column, and a quorate board whose counted votes are a
#   majority to approve. The input is built by sde.domain.policy.make_project_input;
#   see docs/governance.md.
#   Undefined means deny: allow needs every positive fact below and no deny reason,
#   so a missing or malformed input field never allows.
package sde.project

# METADATA
# title: Purposes a project may have
purposes := {"research", "planning"}

# METADATA
# title: Red lines
# description: |
#   Uses no project may have, whatever the votes, each with the keywords that declare it
#   (a declared use or the purpose matching one is refused).
red_lines := {
	"marketing": {"marketing", "advertising", "direct_marketing", "market_research_for_sales"},
	"insurance": {"insurance", "insurance_pricing", "underwriting", "actuarial_pricing"},
	"immigration enforcement": {"immigration_enforcement", "immigration_control", "deportation"},
	"assessing benefits": {"assessing_benefits", "benefits_assessment", "benefit_eligibility", "welfare_eligibility"},
	"policing": {"policing", "law_enforcement", "criminal_investigation", "prosecution"},
}

# METADATA
# title: Legal bases
legal_bases := {"consent", "s251_support", "legal_requirement", "public_task"}

# METADATA
# title: Legal bases that set the national data opt-out aside
opt_out_exempt_bases := {"consent", "legal_requirement"}

# METADATA
# title: Board member kinds the quorum needs
quorum_kinds := {
	"lay": "lay (patient or public)",
	"clinical": "clinical",
	"data_protection": "data protection",
}

# METADATA
# title: Minimum counted votes when the settings do not say
default_min_votes := 3

# METADATA
# title: Allowed
# description: No deny reason, and every positive fact holds.
default allow := false

allow if {
	count(deny) == 0
	application_known
	published
	comment_period_over
	purpose_allowed
	no_red_line
	summary_given
	public_benefit_stated
	commercial_terms_met
	sponsor_not_banned
	no_exclusive_access
	legal_basis_known
	opt_out_handled
	has_datasets
	every_column_justified
	dates_valid
	quorate
	majority_approves
}

# --- Normalised parts of the input (a part of the wrong type becomes empty) --------

settings := input.settings if {
	is_object(input.settings)
} else := {}

application := input.application if {
	is_object(input.application)
} else := {}

datasets := application.datasets if {
	is_array(application.datasets)
} else := []

uses := application.uses if {
	is_array(application.uses)
} else := []

votes := input.votes if {
	is_array(input.votes)
} else := []

min_votes := object.get(settings, "min_votes", default_min_votes)

now := input.now if is_instant(input.now)

# Everything the application declares it is for: its uses and its purpose.
declared contains use if {
	some use in uses
	is_string(use)
}

declared contains application.purpose if is_string(application.purpose)

# METADATA
# title: Red lines crossed
# description: Each red line a declared use or the purpose matches.
crossed contains line if {
	some line, keywords in red_lines
	some use in declared
	use in keywords
}

# METADATA
# title: Counted votes
# description: |
#   Votes that count: cast by a board member who is not banned and has no conflict of
#   interest on this application, approving or rejecting.
counted := [vote |
	some vote in votes
	counts(vote)
]

approvals := [vote |
	some vote in counted
	vote.decision == "approve"
]

# Kinds of board member among the counted voters.
kinds_voted contains vote.kind if {
	some vote in counted
	is_string(vote.kind)
}

# --- Positive facts ----------------------------------------------------------------

application_known if is_id(application.id)

published if application.status == "published"

comment_period_over if {
	is_instant(application.comment_period_ends)
	now >= application.comment_period_ends
}

purpose_allowed if application.purpose in purposes

no_red_line if count(crossed) == 0

public_benefit_stated if application.public_benefit_given == true

summary_given if application.summary_given == true

benefit_sharing_given if application.benefit_sharing_given == true

sponsor_type_known if application.sponsor_type in {"nhs", "academic", "charity", "commercial"}

opt_out_exempt if application.legal_basis in opt_out_exempt_bases

commercial_terms_met if {
	application.sponsor_type in {"nhs", "academic", "charity"}
}

commercial_terms_met if {
	application.sponsor_type == "commercial"
	benefit_sharing_given
}

no_exclusive_access if application.exclusive_access == false

legal_basis_known if application.legal_basis in legal_bases

opt_out_handled if application.national_opt_out_applies == true

opt_out_handled if {
	application.national_opt_out_applies == false
	opt_out_exempt
}

has_datasets if count(datasets) > 0

every_column_justified if {
	count(unjustified) == 0
	every dataset in datasets {
		has_columns(dataset)
	}
}

dates_valid if {
	is_date(application.start_date)
	is_date(application.end_date)
	application.start_date < application.end_date
}

sponsor_not_banned if application.sponsor_banned == false

# METADATA
# title: Valid minimum votes setting
# description: A whole number of at least 1; anything else fails closed.
min_votes_valid if {
	is_number(min_votes)
	min_votes >= 1
	floor(min_votes) == min_votes
}

quorate if {
	min_votes_valid
	count(counted) >= min_votes
	count(missing_kinds) == 0
}

missing_kinds contains kind if {
	some kind, _ in quorum_kinds
	not kind in kinds_voted
}

majority_approves if {
	count(counted) > 0
	count(approvals) * 2 > count(counted)
}

# Columns with no justification, as dataset.column (or a placeholder for a bad entry).
unjustified contains sprintf("%s.%s", [text_field(dataset, "name"), text_field(column, "name")]) if {
	some dataset in datasets
	has_columns(dataset)
	some column in dataset.columns
	not justified(column)
}

# --- Deny reasons ------------------------------------------------------------------

# METADATA
# title: Unknown application
# description: The decision names no application.
# custom:
#   id: project.unknown
deny contains "the application is not known" if not application_known

# METADATA
# title: No date and time
# description: The decision must know when it is taken, to tell whether the comment period is over.
# custom:
#   id: project.no_time
deny contains "the time of the decision is missing or not UTC (YYYY-MM-DDTHH:MM:SSZ)" if not now

# METADATA
# title: Not published for comment
# description: |
#   Only an application that was published for public comment can be decided; a draft
#   must be published first, and a decided, suspended or closed project is not decided again.
# custom:
#   id: project.not_published
deny contains msg if {
	application_known
	not published
	msg := sprintf(
		"project %s has status %s; only an application published for comment can be approved",
		[application.id, text_field(application, "status")],
	)
}

# METADATA
# title: Comment period not over
# description: |
#   The public comment period (its length is set in the configuration, 28 days by
#   default) must be over before the board decides, so every comment can be read.
# custom:
#   id: project.comment_period_open
deny contains msg if {
	is_instant(application.comment_period_ends)
	now < application.comment_period_ends
	msg := sprintf("the public comment period runs until %s", [application.comment_period_ends])
}

# METADATA
# title: No comment period on record
# description: An application with no recorded comment period was never published for comment.
# custom:
#   id: project.no_comment_period
deny contains "the application has no public comment period on record" if {
	not is_instant(object.get(application, "comment_period_ends", null))
}

# METADATA
# title: Purpose not allowed
# description: A project's purpose is research or planning; nothing else.
# custom:
#   id: project.purpose
deny contains msg if {
	not purpose_allowed
	msg := sprintf(
		"the purpose %s is not research or planning",
		[text_field(application, "purpose")],
	)
}

# METADATA
# title: Red line
# description: |
#   Marketing, insurance, immigration enforcement, assessing benefits and policing are
#   refused whatever the votes: no vote, sponsor or legal basis can approve them.
# custom:
#   id: project.red_line
deny contains msg if {
	some line in crossed
	msg := sprintf("red line: patient data may never be used for %s", [line])
}

# METADATA
# title: No plain-language summary
# description: The public must be able to read what the project is, in plain language.
# custom:
#   id: project.no_summary
deny contains "the application has no plain-language summary" if not summary_given

# METADATA
# title: No public benefit
# description: Every project states the benefit it brings to patients and the public.
# custom:
#   id: project.no_public_benefit
deny contains "the application states no public benefit" if not public_benefit_stated

# METADATA
# title: Sponsor type unknown
# description: The sponsor is an NHS body, an academic institution, a charity or a commercial company.
# custom:
#   id: project.sponsor_type
deny contains msg if {
	not sponsor_type_known
	msg := sprintf(
		"the sponsor type %s is not nhs, academic, charity or commercial",
		[text_field(application, "sponsor_type")],
	)
}

# METADATA
# title: Commercial sponsor without benefit-sharing terms
# description: A commercial sponsor must agree how the benefits are shared back with the NHS and the public.
# custom:
#   id: project.benefit_sharing
deny contains "a commercial sponsor needs benefit-sharing terms" if {
	application.sponsor_type == "commercial"
	not benefit_sharing_given
}

# METADATA
# title: Exclusive access
# description: No project, commercial or not, may have exclusive access to the data.
# custom:
#   id: project.exclusive_access
deny contains "no project may have exclusive access to the data" if not no_exclusive_access

# METADATA
# title: No legal basis
# description: |
#   The application names its legal basis: consent, section 251 support, a legal
#   requirement, or a public task.
# custom:
#   id: project.legal_basis
deny contains msg if {
	not legal_basis_known
	msg := sprintf(
		"the legal basis %s is not consent, s251_support, legal_requirement or public_task",
		[text_field(application, "legal_basis")],
	)
}

# METADATA
# title: National data opt-out not stated
# description: The application states whether the national data opt-out applies to it.
# custom:
#   id: project.opt_out_unstated
deny contains "the application does not state whether the national data opt-out applies" if {
	not is_boolean(object.get(application, "national_opt_out_applies", null))
}

# METADATA
# title: National data opt-out set aside without grounds
# description: |
#   Patients' national data opt-outs are honoured unless the legal basis is consent or
#   a legal requirement.
# custom:
#   id: project.opt_out
deny contains msg if {
	application.national_opt_out_applies == false
	not opt_out_exempt
	msg := sprintf(
		"the national data opt-out can only be set aside for consent or a legal requirement, not %s",
		[text_field(application, "legal_basis")],
	)
}

# METADATA
# title: Sponsor banned
# description: An organisation under a ban cannot sponsor a project.
# custom:
#   id: project.sponsor_banned
deny contains "the sponsor organisation is banned" if not sponsor_not_banned

# METADATA
# title: No datasets
# description: The application asks for at least one dataset.
# custom:
#   id: project.no_datasets
deny contains "the application asks for no datasets" if not has_datasets

# METADATA
# title: Dataset without columns
# description: Every dataset asked for lists its columns.
# custom:
#   id: project.no_columns
deny contains msg if {
	some dataset in datasets
	not has_columns(dataset)
	msg := sprintf("dataset %s lists no columns", [text_field(dataset, "name")])
}

# METADATA
# title: Column without justification
# description: Every column asked for needs its own justification (data minimisation).
# custom:
#   id: project.unjustified_column
deny contains msg if {
	some column in unjustified
	msg := sprintf("column %s has no justification", [column])
}

# METADATA
# title: Dates missing or wrong
# description: An application gives a start date and a later end date.
# custom:
#   id: project.dates
deny contains "the application needs a start date and a later end date" if not dates_valid

# METADATA
# title: Minimum votes setting invalid
# description: The configured minimum number of counted votes (min_board_votes) is a whole number of at least 1.
# custom:
#   id: project.min_votes_setting
deny contains "the min_votes setting must be a whole number of at least 1" if not min_votes_valid

# METADATA
# title: Too few counted votes
# description: |
#   The quorum needs a minimum number of counted votes (3 unless the configuration says
#   more). A conflicted, banned or non-board voter's vote does not count.
# custom:
#   id: project.too_few_votes
deny contains msg if {
	min_votes_valid
	count(counted) < min_votes
	msg := sprintf(
		"%d counted votes; the quorum needs at least %d",
		[count(counted), min_votes],
	)
}

# METADATA
# title: Quorum lacks a kind of member
# description: |
#   The quorum needs at least one lay (patient or public) member, one clinical member and
#   one data-protection member among the counted voters.
# custom:
#   id: project.quorum_kind
deny contains msg if {
	some kind in missing_kinds
	msg := sprintf("no %s member cast a counted vote", [quorum_kinds[kind]])
}

# METADATA
# title: No majority to approve
# description: More than half of the counted votes must approve.
# custom:
#   id: project.no_majority
deny contains msg if {
	not majority_approves
	msg := sprintf(
		"%d of %d counted votes approve; more than half must",
		[count(approvals), count(counted)],
	)
}

# METADATA
# title: Unknown vote
# description: A vote is approve or reject.
# custom:
#   id: project.unknown_vote
deny contains msg if {
	some vote in votes
	not vote_decision_known(vote)
	msg := sprintf("the vote of %s is neither approve nor reject", [text_field(vote, "voter")])
}

# --- Functions ---------------------------------------------------------------------

# METADATA
# title: Vote counts
# description: Cast by an unbanned board member with no conflict, approving or rejecting.
counts(vote) if {
	is_object(vote)
	is_id(vote.voter)
	vote.board_member == true
	vote.banned == false
	is_array(vote.conflicts)
	count(vote.conflicts) == 0
	vote_decision_known(vote)
}

vote_decision_known(vote) if vote.decision in {"approve", "reject"}

has_columns(dataset) if {
	is_object(dataset)
	is_array(dataset.columns)
	count(dataset.columns) > 0
}

justified(column) if column.justified == true

# METADATA
# title: ISO date
# description: A string YYYY-MM-DD (compared as text).
is_date(x) if {
	is_string(x)
	regex.match(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`, x)
}

# METADATA
# title: UTC instant
# description: A string YYYY-MM-DDTHH:MM:SSZ (compared as text; regopy cannot parse RFC 3339 Z).
is_instant(x) if {
	is_string(x)
	regex.match(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$`, x)
}

is_id(x) if {
	is_string(x)
	x != ""
}

# METADATA
# title: Text field
# description: A field of an object as text for a message, whatever the object holds.
text_field(obj, key) := obj[key] if {
	is_object(obj)
	is_string(obj[key])
} else := "(missing or not text)"
