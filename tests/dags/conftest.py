"""Airflow is imported by these tests: give it a throwaway home first (see airflow_home)."""

from tests.orchestration.airflow_home import use_throwaway_airflow_home

use_throwaway_airflow_home()
