"""Pydantic shapes of every structured model reply and of the pipeline's own records."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field


class Location(BaseModel):
    city: str
    state: str
    country: str
    urbanicity: str


class Personality(BaseModel):
    traits: list[str] = Field(min_length=2, max_length=6)
    values: list[str] = Field(min_length=1, max_length=4)
    interests: list[str] = Field(min_length=2, max_length=6)


class Education(BaseModel):
    highest_degree: str
    field: str
    university: str
    graduation_year: int


class Employment(BaseModel):
    job_title: str
    company: str
    industry: str
    years_of_experience: int
    work_location: str


class TechnologyProfile(BaseModel):
    comfort_with_technology: str
    devices_used: list[str] = Field(min_length=1, max_length=5)
    platforms_engaged: list[str] = Field(min_length=1, max_length=5)


class SpeakingStyle(BaseModel):
    tone: str
    formality: str
    vocabulary: str
    sentence_structure: str


class OtherDemographics(BaseModel):
    marital_status: str
    living_arrangement: str
    income_bracket: str
    religion: str
    political_views: str
    languages_spoken: list[str] = Field(min_length=1, max_length=4)


class HealthBackground(BaseModel):
    mental_health: str
    physical_health: str


class PersonaDraft(BaseModel):
    """What the model writes for a persona (the seed line and sensitive data are added by code)."""

    name: str
    age: int = Field(ge=13, le=100)
    gender: str
    sexual_orientation: str
    race: str
    nationality: str
    location: Location
    personality: Personality
    education: Education
    employment: Employment
    technology_profile: TechnologyProfile
    speaking_style: SpeakingStyle
    other_demographics: OtherDemographics
    health_and_therapy_background: HealthBackground


class PreferenceList(BaseModel):
    preferences: list[Annotated[str, Field(max_length=120)]] = Field(min_length=1, max_length=12)


class Conflicts(BaseModel):
    """Pairs of preference numbers (1-based, as listed) that contradict each other."""

    conflicts: list[list[int]] = Field(default_factory=list, max_length=20)


class StereotypeCheck(BaseModel):
    inferred_persona: str = Field(max_length=100)
    verdict: Literal["typical", "atypical", "anyone"]


class Update(BaseModel):
    updated: str = Field(min_length=3, max_length=120)


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class Conversation(BaseModel):
    topic: str = Field(max_length=40)
    messages: list[Turn] = Field(min_length=2, max_length=8)


class SelfQA(BaseModel):
    """A Q&A for the user's own, current preference."""

    user_query: str
    topic_query: str = Field(max_length=40)
    correct_answer: str
    stereotype_trap: str
    wrong_preference: str
    generic_answer: str


class NotMineQA(BaseModel):
    """A Q&A whose preference must NOT be used (someone else's, or one the user asked to forget)."""

    user_query: str
    topic_query: str = Field(max_length=40)
    neutral_answer: str
    uses_that_preference: str
    stereotype_trap: str
    other_preference: str


class Filler(BaseModel):
    """An unrelated dialogue (code, math, trivia) that pads the 128k history."""

    messages: list[Turn] = Field(min_length=2, max_length=6)
