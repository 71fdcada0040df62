"""PBSD, DSCL's patch-based self-distillation loss (Xuan & Zhang, AAAI 2024).

For image i and patch j: a teacher embedding ``c_i[j]`` (the patch's RoIAlign on the query's feature map through
the projector, no gradient) and a student embedding ``s_i[j]`` (the patch cropped, re-augmented and encoded).
Both are scored against the same candidates ``Z_i`` = image i's own key, then the queue:

    L = mean over j, i of  CE( softmax(c_i[j] · Z_i / T)  →  log_softmax(s_i[j] · Z_i / T) )

i.e. the teacher's soft assignment over the candidates is the target of the student's. All embeddings are
L2-normalised rows. The teacher gets no gradient (it is detached here).
"""
import torch

from ._checks import check_normalised, check_temperatures

__all__ = ['PBSDLoss']


def _check_inputs(teacher, student, keys, queue) -> None:
    for name, x, ndim in (('teacher', teacher, 3), ('student', student, 3), ('keys', keys, 2), ('queue', queue, 2)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != ndim:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            want = '[L, B, D]' if ndim == 3 else ('[B, D]' if name == 'keys' else '[K, D]')
            raise ValueError(f'{name} must be a floating-point tensor of shape {want}, got {shape}')
    if teacher.shape != student.shape:
        raise ValueError(f'teacher and student must have the same shape [L, B, D], got {list(teacher.shape)} and '
                         f'{list(student.shape)}')
    patches, batch, dim = teacher.shape
    if patches < 1 or batch < 1:
        raise ValueError(f'teacher / student must hold at least one patch of one image, got {list(teacher.shape)}')
    if keys.shape != (batch, dim):
        raise ValueError(f'keys must have shape [B, D] = [{batch}, {dim}], got {list(keys.shape)}')
    if queue.shape[1] != dim:
        raise ValueError(f'queue must have shape [K, D] with D = {dim}, got {list(queue.shape)}')
    check_normalised(teacher=teacher, student=student, keys=keys, queue=queue)


class PBSDLoss(torch.nn.Module):
    """Call ``(teacher [L, B, D], student [L, B, D], keys [B, D], queue [K, D])`` → scalar (float32, or float64
    for float64 inputs); no gradient reaches ``teacher``."""

    def __init__(self, temperature: float = 0.07):
        super().__init__()
        self.temperature, _ = check_temperatures(temperature, None)

    def extra_repr(self) -> str:
        return f'temperature={self.temperature}'

    def forward(self, teacher: torch.Tensor, student: torch.Tensor, keys: torch.Tensor,
                queue: torch.Tensor) -> torch.Tensor:
        _check_inputs(teacher, student, keys, queue)
        dtype = torch.float64 if torch.float64 in (teacher.dtype, student.dtype, keys.dtype, queue.dtype) \
            else torch.float32
        with torch.autocast(device_type=student.device.type, enabled=False):
            teacher, student = teacher.detach().to(dtype), student.to(dtype)
            keys, queue = keys.to(dtype), queue.to(dtype)
            scale = 1.0 / self.temperature

            def scores(x):  # [L, B, 1 + K]: own key, then the queue
                own = (x * keys).sum(dim=-1, keepdim=True)
                return torch.cat([own, x @ queue.t()], dim=-1) * scale
            target = scores(teacher).softmax(dim=-1)
            log_prob = scores(student).log_softmax(dim=-1)
            return -(target * log_prob).sum(dim=-1).mean()
