import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Queue

/// `/v1/projects`: a user's persistent workspaces, one file at a time or as a tar.gz archive.
struct ProjectsController {
    let workspaces: WorkspaceStore
    /// Where the caller's disk quota comes from (`UserLimits.diskQuotaBytes`).
    var limits: (any LimitStore)?

    func addRoutes(to group: RouterGroup<JobServerRequestContext>) {
        group.get("projects", use: listProjects)
        group.get("projects/:project/files", use: listFiles)
        group.put("projects/:project/files/**", use: putFile)
        group.get("projects/:project/files/**", use: getFile)
        group.delete("projects/:project/files/**", use: deleteFile)
        group.put("projects/:project/archive", use: putArchive)
        group.get("projects/:project/archive", use: getArchive)
    }

    @Sendable func listProjects(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let names = try await BlockingIO.run { [workspaces] in try workspaces.listProjects(user: user.id) }
        return JSONBody.response(.object(["projects": .array(names.map { .object(["name": .string($0.rawValue)]) })]))
    }

    @Sendable func listFiles(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let project = try Self.project(context)
        let files = try await BlockingIO.run { [workspaces] in try workspaces.listFiles(user: user.id, project: project) }
        return JSONBody.response(.object([
            "project": .string(project.rawValue),
            "files": .array(files.map { file in
                .object(["path": .string(file.path), "bytes": .number(Double(file.bytes)),
                         "modified_at": JobView.timestamp(file.modifiedAt)])
            }),
        ]))
    }

    @Sendable func putFile(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let project = try Self.project(context)
        let path = try Self.path(context)
        let limit = workspaces.limits.maxFileBytes
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch {
            throw APIError(.fileAccess, "file larger than \(limit) bytes", status: .contentTooLarge,
                           details: .object(["limit": .number(Double(limit))]))
        }
        let bytes = Array(body.readableBytesView)
        let quota = try await diskQuota(user)
        let created = try await BlockingIO.run { [workspaces] in
            try workspaces.putFile(user: user.id, project: project, path: path, bytes: bytes, quota: quota)
        }
        return JSONBody.response(
            .object(["project": .string(project.rawValue), "path": .string(path.rawValue), "bytes": .number(Double(body.readableBytes))]),
            status: created ? .created : .ok)
    }

    @Sendable func getFile(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let project = try Self.project(context), path = try Self.path(context)
        let bytes = try await BlockingIO.run { [workspaces] in try workspaces.readFile(user: user.id, project: project, path: path) }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    @Sendable func deleteFile(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let project = try Self.project(context), path = try Self.path(context)
        try await BlockingIO.run { [workspaces] in try workspaces.deleteFile(user: user.id, project: project, path: path) }
        return Response(status: .noContent)
    }

    @Sendable func putArchive(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let project = try Self.project(context)
        let limit = workspaces.limits.maxArchiveBytes
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch {
            throw APIError(.fileAccess, "archive larger than \(limit) bytes", status: .contentTooLarge,
                           details: .object(["limit": .number(Double(limit))]))
        }
        let quota = try await diskQuota(user)
        let summary = try await BlockingIO.run { [workspaces] in
            try workspaces.replaceWithArchive(user: user.id, project: project, archive: body, quota: quota)
        }
        var object = try JSONValue.encode(summary).objectValue ?? [:]
        object["project"] = .string(project.rawValue)
        return JSONBody.response(.object(object))
    }

    @Sendable func getArchive(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let project = try Self.project(context)
        let archive = try await BlockingIO.run { [workspaces] in try workspaces.archive(user: user.id, project: project) }
        return Response(status: .ok, headers: [
            .contentType: "application/gzip",
            .contentDisposition: "attachment; filename=\"\(project.rawValue).tar.gz\"",
        ], body: .init(byteBuffer: archive))
    }

    func diskQuota(_ user: User) async throws -> DiskQuota? {
        guard let limits else { return nil }
        return DiskQuota(try await limits.limits(of: user.id))
    }

    static func project(_ context: JobServerRequestContext) throws -> ProjectName {
        do {
            return try ProjectName(validating: context.parameters.get("project") ?? "")
        } catch {
            throw APIError(error)
        }
    }

    static func path(_ context: JobServerRequestContext) throws -> RelativePath {
        let raw = context.parameters.getCatchAll().joined(separator: "/")
        guard let decoded = raw.removingPercentEncoding else {
            throw APIError(.fileAccess, "the file path is not valid percent-encoding", status: .badRequest,
                           details: .object(["path": .string(raw)]))
        }
        do {
            return try RelativePath(validating: decoded)
        } catch {
            throw APIError(error)
        }
    }
}
