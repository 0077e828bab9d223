"""The web pages people work in: the agent desk (`/desk`), the team-lead dashboard
(`/dashboard`) and their sign-in, served by the same aiohttp app over the same API."""
