"""The names of the MLflow tags the app writes and reads: one constant per name.

MLflow's own names come first; ``kerascnn.*`` are this app's. ``compare``, the report, the
sweep and the training all read and write runs through these constants, so a name is spelled
once.
"""

# MLflow's own.
PARENT = "mlflow.parentRunId"          # a sweep's child names its parent run

# How a run came to be and which process owns it.
CONFIG_HASH = "kerascnn.config_hash"   # identical configs share it (trainer.resume=auto)
SWEEP_HASH = "kerascnn.sweep_hash"     # a sweep's parent, found again when it is run again
HOST = "kerascnn.host"
PID = "kerascnn.pid"
RESUMED = "kerascnn.resumed"
RESUMED_FROM_EPOCH = "kerascnn.resumed_from_epoch"
EPOCHS = "kerascnn.epochs"             # a resumed run trained for another number of epochs

# How a run ended.
END_REASON = "kerascnn.end_reason"
SIGNAL = "kerascnn.signal"
DIVERGED = "kerascnn.diverged"
HEALTH = "kerascnn.health"             # ok | stalled

# A hyper-parameter search's trials.
OPTUNA_STUDY = "optuna.study_name"
OPTUNA_TRIAL = "optuna.trial_number"
OPTUNA_STATE = "optuna.state"
OPTUNA_BEST_TRIAL = "optuna.best_trial_number"   # on a search's parent run
OPTUNA_BEST_PARAMS = "optuna.best_params"        # JSON of the best trial's sampled values

# A sweep's parent run: its best child.
BEST_RUN_ID = "best_run_id"
BEST_RUN_NAME = "best_run_name"
