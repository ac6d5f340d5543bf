"""cron_jobs: a reconciler plugin kind, the worked example of docs/plugins.md."""

from .provider import CronJob, CronJobsProvider

__all__ = ["CronJob", "CronJobsProvider"]
