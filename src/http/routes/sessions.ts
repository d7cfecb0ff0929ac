import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Veil } from '../../veil.ts';
import { interactionView, participantView, sessionView } from '../../views.ts';
import {
  Interaction,
  PageQuery,
  Participant,
  ParticipantBody,
  ParticipantParams,
  ParticipantPatch,
  ParticipantReplaceBody,
  page,
  Session,
  SessionBody,
  SessionParams,
  SessionPatch,
  SessionQuery,
} from '../schemas.ts';
import { withErrors } from './responses.ts';

/** /v1/sessions: open, read, renew, close sessions and change their participants. */
export const sessionRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['sessions'];
  const config = { scope: 'sessions' as const };

  app.post(
    '/sessions',
    {
      schema: {
        tags,
        summary: 'Open a session; the same externalId and body again returns it (200), another body is a 409',
        body: SessionBody,
        response: withErrors({ 200: Session, 201: Session }),
      },
      config,
    },
    async (request, reply) => {
      const { session, created } = await veil.sessions.create(request.apiKey.tenantId, request.body);
      return reply.status(created ? 201 : 200).send(sessionView(session));
    },
  );

  app.get(
    '/sessions',
    {
      schema: { tags, querystring: SessionQuery, response: withErrors({ 200: page(Session) }) },
      config: { scope: 'read' },
    },
    async (request) => {
      const { limit = 50, ...query } = request.query;
      const result = await veil.sessions.list(request.apiKey.tenantId, { ...query, limit });
      return { data: result.data.map(sessionView), nextCursor: result.nextCursor };
    },
  );

  app.get(
    '/sessions/:id',
    {
      schema: { tags, params: SessionParams, response: withErrors({ 200: Session }) },
      config: { scope: 'read' },
    },
    async (request) => sessionView(await veil.sessions.get(request.apiKey.tenantId, request.params.id)),
  );

  app.patch(
    '/sessions/:id',
    {
      schema: {
        tags,
        summary: 'Renew (ttlSeconds or expiresAt), or change record or metadata',
        params: SessionParams,
        body: SessionPatch,
        response: withErrors({ 200: Session }),
      },
      config,
    },
    async (request) =>
      sessionView(await veil.sessions.update(request.apiKey.tenantId, request.params.id, request.body)),
  );

  app.delete(
    '/sessions/:id',
    {
      schema: {
        tags,
        summary: 'Close; proxies are released at once',
        params: SessionParams,
        response: withErrors({ 200: Session }),
      },
      config,
    },
    async (request) => sessionView(await veil.sessions.close(request.apiKey.tenantId, request.params.id)),
  );

  app.post(
    '/sessions/:id/participants',
    {
      schema: {
        tags,
        params: SessionParams,
        body: ParticipantBody,
        response: withErrors({ 201: Participant }),
      },
      config,
    },
    async (request, reply) => {
      const p = await veil.sessions.addParticipant(request.apiKey.tenantId, request.params.id, request.body);
      return reply.status(201).send(participantView(p));
    },
  );

  app.delete(
    '/sessions/:id/participants/:pid',
    { schema: { tags, params: ParticipantParams, response: withErrors({ 200: Session }) }, config },
    async (request) =>
      sessionView(
        await veil.sessions.removeParticipant(request.apiKey.tenantId, request.params.id, request.params.pid),
      ),
  );

  app.put(
    '/sessions/:id/participants/:pid',
    {
      schema: {
        tags,
        summary:
          'Replace a participant in one step (the courier changes): the newcomer keeps the proxy when allowed; all or nothing',
        params: ParticipantParams,
        body: ParticipantReplaceBody,
        response: withErrors({ 200: Session }),
      },
      config,
    },
    async (request) => {
      const { id, pid } = request.params;
      const session = await veil.sessions.replaceParticipant(request.apiKey.tenantId, id, pid, request.body);
      return sessionView(session);
    },
  );

  app.patch(
    '/sessions/:id/participants/:pid',
    {
      schema: {
        tags,
        summary: 'Change what a participant may do (canInitiate, revealNumber) or its label',
        params: ParticipantParams,
        body: ParticipantPatch,
        response: withErrors({ 200: Session }),
      },
      config,
    },
    async (request) => {
      const { id, pid } = request.params;
      const session = await veil.sessions.updateParticipant(request.apiKey.tenantId, id, pid, request.body);
      return sessionView(session);
    },
  );

  app.get(
    '/sessions/:id/interactions',
    {
      schema: {
        tags,
        params: SessionParams,
        querystring: PageQuery,
        response: withErrors({ 200: page(Interaction) }),
      },
      config: { scope: 'read' },
    },
    async (request) => {
      const { limit = 50, cursor } = request.query;
      const result = await veil.sessions.interactions(request.apiKey.tenantId, request.params.id, {
        cursor,
        limit,
      });
      return { data: result.data.map(interactionView), nextCursor: result.nextCursor };
    },
  );
};
