from fleet.common.migrations import run_env
from fleet.trip.adapters.tables import metadata

run_env(metadata)
