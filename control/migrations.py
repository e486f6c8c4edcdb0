"""The control plane's schema, one versioned step at a time (applied by :mod:`control.database`).

A step is never edited once released: a change to the schema is a new step.
"""

from __future__ import annotations

from .database import Migration

__all__ = ["MIGRATIONS"]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "meetings and participants",
        (
            """
            CREATE TABLE meetings (
                id TEXT PRIMARY KEY,
                title TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                host_identity TEXT,
                scheduled_start TEXT,
                status TEXT NOT NULL CHECK (status IN ('scheduled', 'live', 'ended')),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX meetings_by_creation ON meetings (created_at, id)",
            """
            CREATE TABLE participants (
                id TEXT PRIMARY KEY,
                meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                identity TEXT NOT NULL,
                name TEXT NOT NULL,
                email TEXT,
                role TEXT NOT NULL CHECK (role IN ('host', 'participant', 'viewer')),
                joined_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX participants_by_meeting ON participants (meeting_id, joined_at)",
        ),
    ),
    Migration(
        2,
        "participant lifecycle and per-meeting policies",
        (
            # Rows from version 1 were let in straight away: they are 'joined'.
            "ALTER TABLE participants ADD COLUMN status TEXT NOT NULL DEFAULT 'joined'"
            " CHECK (status IN ('waiting', 'joined', 'denied', 'removed', 'left'))",
            "ALTER TABLE participants ADD COLUMN status_reason TEXT",
            "ALTER TABLE participants ADD COLUMN connected INTEGER NOT NULL DEFAULT 0",
            # Until then an admitted participant who never connects holds a place.
            "ALTER TABLE participants ADD COLUMN token_expires_at TEXT",
            "ALTER TABLE participants ADD COLUMN invite_id TEXT",
            "CREATE INDEX participants_by_status ON participants (meeting_id, status)",
            """
            CREATE TABLE meeting_policies (
                meeting_id TEXT PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
                policy TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
        ),
    ),
    Migration(
        3,
        "invites",
        (
            """
            CREATE TABLE invites (
                id TEXT PRIMARY KEY,
                meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                email TEXT,
                role TEXT CHECK (role IN ('host', 'participant', 'viewer')),
                max_uses INTEGER,
                uses INTEGER NOT NULL DEFAULT 0,
                expires_at TEXT NOT NULL,
                created_at TEXT NOT NULL,
                created_by TEXT NOT NULL
            )
            """,
        ),
    ),
    Migration(
        4,
        "chat",
        (
            """
            CREATE TABLE chat_messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                sender_id TEXT NOT NULL,
                sender_name TEXT NOT NULL,
                text TEXT NOT NULL,
                recipient_id TEXT,
                sent_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX chat_by_meeting ON chat_messages (meeting_id, seq)",
        ),
    ),
    Migration(
        5,
        "audit log",
        (
            # No foreign key: the record of a meeting outlives the meeting.
            """
            CREATE TABLE audit_log (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                meeting_id TEXT NOT NULL,
                at TEXT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT,
                reason TEXT,
                details TEXT NOT NULL DEFAULT '{}'
            )
            """,
            "CREATE INDEX audit_by_meeting ON audit_log (meeting_id, seq)",
        ),
    ),
    Migration(
        6,
        "breakout rooms",
        (
            """
            CREATE TABLE breakout_sessions (
                meeting_id TEXT PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
                opened_at TEXT NOT NULL,
                closes_at TEXT
            )
            """,
            """
            CREATE TABLE breakout_rooms (
                id TEXT PRIMARY KEY,
                meeting_id TEXT NOT NULL
                    REFERENCES breakout_sessions (meeting_id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                position INTEGER NOT NULL
            )
            """,
            """
            CREATE TABLE breakout_assignments (
                participant_id TEXT PRIMARY KEY,
                meeting_id TEXT NOT NULL,
                room_id TEXT NOT NULL REFERENCES breakout_rooms (id) ON DELETE CASCADE
            )
            """,
            "CREATE INDEX breakout_rooms_by_meeting ON breakout_rooms (meeting_id, position)",
        ),
    ),
    Migration(
        7,
        "recordings, transcriptions and summaries",
        (
            # No foreign key to meetings: deleting a meeting erases its
            # recordings' files first (control.recordings), then these rows.
            """
            CREATE TABLE meeting_recordings (
                id TEXT PRIMARY KEY,
                meeting_id TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('recording', 'completed', 'failed')),
                reason TEXT,
                options TEXT NOT NULL DEFAULT '{}',
                started_by TEXT NOT NULL,
                started_at TEXT NOT NULL,
                stopped_at TEXT,
                duration_s REAL,
                retention_days INTEGER NOT NULL,
                encrypted INTEGER NOT NULL DEFAULT 0,
                files TEXT NOT NULL DEFAULT '[]',
                details TEXT NOT NULL DEFAULT '{}'
            )
            """,
            "CREATE INDEX recordings_by_meeting ON meeting_recordings (meeting_id, started_at)",
            # At most one running recording per meeting: a second start fails here.
            "CREATE UNIQUE INDEX one_running_recording ON meeting_recordings (meeting_id)"
            " WHERE status = 'recording'",
            """
            CREATE TABLE meeting_transcriptions (
                recording_id TEXT PRIMARY KEY
                    REFERENCES meeting_recordings (id) ON DELETE CASCADE,
                meeting_id TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
                error TEXT,
                language TEXT,
                text TEXT NOT NULL DEFAULT '',
                segments TEXT NOT NULL DEFAULT '[]',
                details TEXT NOT NULL DEFAULT '{}',
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX transcriptions_by_meeting ON meeting_transcriptions (meeting_id)",
            """
            CREATE TABLE meeting_summaries (
                recording_id TEXT PRIMARY KEY
                    REFERENCES meeting_recordings (id) ON DELETE CASCADE,
                meeting_id TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
                error TEXT,
                summary TEXT NOT NULL DEFAULT '{}',
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX summaries_by_meeting ON meeting_summaries (meeting_id)",
        ),
    ),
    Migration(
        8,
        "webhook deliveries and the readiness probe",
        (
            # One row per (event, endpoint): the payload is kept so that a
            # delivery still pending at a restart is sent again. No foreign
            # key: the log of a meeting's events outlives the meeting.
            """
            CREATE TABLE webhook_deliveries (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                event_id TEXT NOT NULL,
                event TEXT NOT NULL,
                meeting_id TEXT,
                url TEXT NOT NULL,
                payload TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                response_status INTEGER,
                error TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                next_attempt_at TEXT
            )
            """,
            "CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (status, seq)",
            "CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at)",
            # /readyz writes here: a store that cannot take a write is not ready.
            """
            CREATE TABLE readiness_probe (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                checked_at TEXT NOT NULL
            )
            """,
        ),
    ),
)
