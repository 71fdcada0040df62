"""timm_paco.tasks"""
