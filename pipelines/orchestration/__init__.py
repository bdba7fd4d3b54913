"""The Airflow runtime layer: exchange-calendar timetable, plugin, callbacks, embedded bootstrap.

Modules here are imported by DAG files at parse time, so they import only Airflow and the
standard library at top level; anything heavy is imported inside functions.
"""
