"""The trained model, backend-neutral: its architecture, its file (``model.pinn``) and the
:class:`~ptychopinn.model.trained.TrainedModel` both backends build their network from."""
