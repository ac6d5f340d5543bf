"""The GitOps controller: `reconcile watch`, status, history."""
