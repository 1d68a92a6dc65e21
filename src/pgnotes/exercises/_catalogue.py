"""Which module registers which exercises, in the book's order.

:func:`pgnotes.exercises.get` imports only the module that holds the name it is asked for, so
checking one exercise does not import the whole package; :func:`pgnotes.exercises.available`
imports them all. A test checks that each module registers exactly the names listed here.
"""

MODULES: dict[str, tuple[str, ...]] = {
    "pgnotes.exercises.gaussian": (
        "normal_log_prob",
        "normal_score",
        "normal_score_log_std",
        "diag_log_prob",
        "diag_score",
        "mvn_log_prob",
        "mvn_score",
        "mvn_score_tril",
        "tanh_log_abs_det_jacobian",
        "squashed_log_prob",
    ),
    "pgnotes.exercises.estimators": (
        "exact_gradient_step",
        "exact_variance_quadratic",
        "score_function_step_gradient",
    ),
    "pgnotes.exercises.reinforce": ("reward_to_go",),
    "pgnotes.exercises.fisher": ("diag_kl",),
    "pgnotes.exercises.pathwise": ("return_derivative_gain", "sac_optimal_std"),
}
