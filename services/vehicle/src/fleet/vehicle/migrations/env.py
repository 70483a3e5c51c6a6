from fleet.common.migrations import run_env
from fleet.vehicle.adapters.tables import metadata

run_env(metadata)
