"""Lighting, sky and the photo: light the albedo, then apply the camera's exposure, noise, blur, gamma."""

from __future__ import annotations

import math

import cv2
import numpy as np

from cityseg.synthcity.builder import _Light
from cityseg.synthcity.camera import _Cam
from cityseg.synthcity.helpers import _jit
from cityseg.synthcity.raster import _Canvas
from cityseg.synthcity.scene import SceneOptions


def _make_light(rng, opts: SceneOptions) -> _Light:
    """Sun, ambient light, shadow strength, sky colours and haze for the scene's environment."""
    el = rng.uniform(0.25, 1.1)
    az = rng.uniform(-np.pi, np.pi)
    sun = np.array([math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)])
    if opts.environment == "night":
        return _Light(sun, rng.uniform(0.04, 0.08), 0.0, 0.0, True, False, np.array([4.0, 6, 16]),
                      _jit(rng, (45, 38, 40), 10), rng.uniform(200, 600), 0.0)
    if opts.environment == "tunnel":
        return _Light(sun, rng.uniform(0.25, 0.4), 0.0, 0.0, False, True, np.array([150.0, 180, 220]),
                      np.array([220.0, 225, 230]), 2000.0, 0.2)
    overcast = rng.random() < 0.4
    if overcast:
        amb, kd, sh = rng.uniform(0.75, 0.9), rng.uniform(0.05, 0.2), rng.uniform(0.3, 0.6)
        top = _jit(rng, (175, 182, 192), 15)
        hor = _jit(rng, (215, 218, 222), 12)
        clouds = rng.uniform(0.3, 0.8)
    else:
        amb, kd, sh = rng.uniform(0.42, 0.6), rng.uniform(0.5, 0.7), rng.uniform(0.75, 0.9)
        top = _jit(rng, (85, 135, 205), 20)
        hor = _jit(rng, (200, 215, 232), 12)
        clouds = rng.uniform(0.0, 0.6)
    return _Light(sun, amb, kd, sh, False, False, top, hor, rng.uniform(350, 2500), clouds)


def _sky(cam: _Cam, D: np.ndarray, light: _Light, rng, sel: np.ndarray) -> np.ndarray:
    """Sky colour for the pixels ``sel`` (gradient by elevation, soft clouds)."""
    d = D[sel]
    el = d[:, 2] / np.sqrt((d * d).sum(1))
    t = np.clip(el / 0.55, 0, 1) ** 0.6
    hor, top = light.sky_hor.astype(np.float32), light.sky_top.astype(np.float32)
    col = hor[None, :] * (1 - t[:, None]) + top[None, :] * t[:, None]
    small = rng.random((4, 8)).astype(np.float32)
    fine = rng.random((10, 20)).astype(np.float32)
    if light.clouds > 0:
        nz = (cv2.resize(small, (cam.W, cam.H), interpolation=cv2.INTER_CUBIC) * 0.7 +
              cv2.resize(fine, (cam.W, cam.H), interpolation=cv2.INTER_CUBIC) * 0.3)[sel]
        c = np.clip((nz - (1 - light.clouds * 0.8)) / 0.25, 0, 1) * light.clouds
        cc = np.array([240.0, 240, 242], np.float32) * (0.85 + 0.15 * nz[:, None])
        col = col * (1 - c[:, None]) + cc * c[:, None]
    if light.night:
        col[rng.random(len(col)) < 0.001] = 120.0
    return col


def _compose(cv: _Canvas, cam: _Cam, D: np.ndarray, light: _Light, shadow: np.ndarray,
             lamps: list, rng, opts: SceneOptions, tunnel_end: float | None) -> np.ndarray:
    """Light the albedo, add haze, sky and glow, then the camera's exposure, noise, blur and gamma.

    Per-pixel scalar factors (light, haze, vignetting) are folded into one multiply of the
    albedo; no BLAS for per-pixel colour maths (it multi-threads badly inside worker processes).
    """
    H, W = cam.H, cam.W
    f32 = np.float32
    sky = ~np.isfinite(cv.z)
    fin = ~sky
    exposure = rng.uniform(0.75, 1.25) if not light.night else rng.uniform(0.6, 1.0)
    wb = (exposure * rng.uniform(0.94, 1.06, 3)).astype(f32)
    yy = ((np.arange(H, dtype=f32) - H / 2) / H)[:, None]
    xx = ((np.arange(W, dtype=f32) - W / 2) / W)[None, :]
    vign = f32(1) - f32(rng.uniform(0.0, 0.7)) * (xx * xx + yy * yy)
    # aerial perspective: fraction f of the haze colour (0 on the sky, which is replaced below)
    f = f32(1) - np.exp(np.where(fin, cv.z, f32(0)) * f32(-1.0 / light.haze))
    if light.night:
        f *= f32(0.3)
    keep = (f32(1) - f) * vign
    fv = f * vign
    hz = light.sky_hor.astype(f32)
    direct = f32(light.amb) + f32(light.kd) * cv.ndl * (f32(1) - f32(light.shadow) * (shadow * cv.gnd))
    img = cv.alb * (direct * keep)[..., None]
    img += fv[..., None] * hz
    if lamps or opts.environment == "night" or tunnel_end is not None:
        iy, ix = np.nonzero(fin)
        P = cam.C[None, :].astype(f32) + cv.z[iy, ix][:, None] * D[iy, ix]
        add = np.zeros((len(iy), 3), f32)
        if opts.environment == "night":  # the ego car's headlights
            lamps = lamps + [(np.array([0.0, 8.0, 0.8]), np.array([1.0, 0.97, 0.9]), 0.7, 3.0),
                             (np.array([0.0, 20.0, 0.8]), np.array([1.0, 0.97, 0.9]), 0.5, 5.0)]
        near = sorted(lamps, key=lambda L: float(np.linalg.norm(L[0] - cam.C)))[:16]
        for pos, rgb, inten, rad in near:
            d2 = ((P - pos[None, :].astype(f32)) ** 2).sum(1)
            add += (f32(inten * rad * rad) / (f32(rad * rad) + d2))[:, None] * rgb[None, :].astype(f32)
        if tunnel_end is not None:  # daylight outside the tunnel: strongly over-exposed
            add[P[:, 1] > tunnel_end] += f32(2.5)
        img[iy, ix] += cv.alb[iy, ix] * add * keep[iy, ix][:, None]
    em = cv.emis > 0
    if em.any():
        img[em] = cv.alb[em] * (cv.emis[em] * keep[em])[:, None] + fv[em][:, None] * hz
    if sky.any():
        sc = _sky(cam, D, light, rng, sky).astype(f32) * vign[sky][:, None]
        img[sky] = sc * f32(3.0) if tunnel_end is not None else sc
    if em.any() and (light.night or light.tunnel):  # glow around light sources in the dark
        glow = np.where(em[..., None], np.maximum(img - f32(180), f32(0)), f32(0))
        img += cv2.GaussianBlur(glow, (0, 0), max(1.0, W / 120)) * f32(2.0 if light.night else 0.8)
    img *= wb
    sat = f32(rng.uniform(0.7, 1.1))
    if abs(sat - 1) > 0.02:
        gray = (img[..., 0] + img[..., 1] + img[..., 2]) * f32((1 - sat) / 3)
        img *= sat
        img += gray[..., None]
    # sensor noise (uniform noise with the variance of sigma: cheaper than Gaussian)
    sigma = rng.uniform(1.0, 4.5) if not light.night else rng.uniform(6, 12)
    noise = rng.random((H, W, 3), dtype=f32)
    noise -= f32(0.5)
    noise *= f32(sigma * math.sqrt(12.0))
    img += noise
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.9) * max(W / 1024, 0.5))
    np.maximum(img, 0, out=img)
    out = cv2.convertScaleAbs(img)  # rounds and saturates to uint8
    gamma = rng.uniform(0.85, 1.15)
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(out, lut)
