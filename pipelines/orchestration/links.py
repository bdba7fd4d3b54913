"""The "Data Docs" extra link of a validating task, and the ``@task`` variant carrying it.

Airflow 3 keeps user code out of the API server: at the end of a task (success or
failure) the worker calls each of the operator's links' ``get_link`` and stores the URL
as an XCom under the link's ``xcom_key``; the UI's extra-links button reads that XCom.
A validating task pushes the Data Docs pages it wrote under :data:`DATA_DOCS_XCOM`
(:func:`push_data_docs`); :class:`DataDocsLink` turns them into the browser address
(:func:`pipelines.contracts.data_docs.data_docs_url`: the run's page, or the index) under
``$ALPHAFACTORY_REPORTS_URL`` when set, else on the API server itself
(:mod:`pipelines.orchestration.reports_app`: the UI hides ``file://`` links, and an S3
lake's pages have no browsable address of their own).
The plugin (:mod:`pipelines.orchestration.plugin`) registers the link too, as Airflow's
extra-link guide asks; in the API server it only reads back what the worker stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import BaseOperatorLink
from airflow.sdk.bases.decorator import task_decorator_factory

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.bases.decorator import Task, TaskDecorator
    from airflow.sdk.types import TaskInstanceKey

P = ParamSpec("P")
R = TypeVar("R")

#: XCom key under which a validating task lists the Data Docs pages it wrote.
DATA_DOCS_XCOM = "data_docs_pages"
DATA_DOCS_LINK_NAME = "Data Docs"


class DataDocsLink(BaseOperatorLink):
    """The task's Great Expectations Data Docs: its validation page, or the index."""

    name = DATA_DOCS_LINK_NAME

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """In the worker (``ti_key`` is the running task instance): the address of the
        pages the task pushed, the index when it pushed none or several. In the API
        server (a bare key): the address the worker stored, "" before the task ran."""
        pull = getattr(ti_key, "xcom_pull", None)
        if pull is None:
            from airflow.serialization.definitions.operatorlink import XComOperatorLink

            stored: str = XComOperatorLink(name=self.name, xcom_key=self.xcom_key).get_link(
                operator,  # type: ignore[arg-type]
                ti_key=ti_key,  # type: ignore[arg-type]
            )
            return stored
        pages = pull(task_ids=ti_key.task_id, key=DATA_DOCS_XCOM, map_indexes=ti_key.map_index)
        return data_docs_link([str(p) for p in pages or []])


def data_docs_link(pages: list[str]) -> str:
    """The link's address for ``pages``: under ``$ALPHAFACTORY_REPORTS_URL`` when set,
    else the API server's reports path (a same-origin link the UI renders)."""
    import os

    from pipelines.config import REPORTS_URL_ENV
    from pipelines.contracts.data_docs import data_docs_url
    from pipelines.orchestration.reports_app import reports_path

    return data_docs_url(pages, base_url=os.environ.get(REPORTS_URL_ENV) or reports_path())


class DataDocsPythonOperator(_PythonDecoratedOperator):
    """``@task``'s operator with the :class:`DataDocsLink` button."""

    operator_extra_links = (DataDocsLink(),)
    custom_operator_name = "@validating_task"


# The plugin's copy of the link attaches to this operator when the API server loads a DAG.
DataDocsLink.operators = [DataDocsPythonOperator]


@overload
def validating_task(python_callable: Callable[P, R]) -> Task[P, R]: ...


@overload
def validating_task(python_callable: None = None, **kwargs: Any) -> TaskDecorator: ...


def validating_task(
    python_callable: Callable[..., Any] | None = None, **kwargs: Any
) -> Task[..., Any] | TaskDecorator:
    """``@task`` for a task that runs data contracts: its task instances show a "Data
    Docs" extra link (push the pages with :func:`push_data_docs`)."""
    # with a callable the factory returns the decorated task (typed as a decorator)
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=DataDocsPythonOperator,
        **kwargs,
    )


def push_data_docs(context: Any, pages: list[str]) -> None:
    """Record the Data Docs pages the running task wrote, for its "Data Docs" link."""
    context["ti"].xcom_push(key=DATA_DOCS_XCOM, value=list(pages))
